#!/usr/bin/env node
// Interop harness: drives tidings with the official Momento Node SDK (@gomomento/sdk).
//
// Usage:
//   node tests/node/interop.mjs <scenario> --host 127.0.0.1 --port P --cache NAME
//        [--topic T] [--count N] [--seconds S] [--heartbeats] [--trace]
//        [--binary] [--interval-ms MS] [--verbose] [--fault JSON]
//        [--admin-port P] [--block-after N] [--quiet-ms MS]
//
// Scenarios (one JSON object per line on stdout):
//   publish       publish --count (default 1) messages "msg-<i>" (i from 1; --binary sends
//                 them as UTF-8 bytes), --interval-ms apart; then {"published": N}.
//   subscribe     {"ready": true} once the subscription is established, then
//                 {"item": {...}} / {"discontinuity": {...}} (and {"heartbeat": {}} with
//                 --heartbeats). Exits 0 after --count items, 3 after --seconds (default 30).
//                 With --trace also prints {"subscribe_request": {...}} for every Subscribe
//                 the SDK sends (incl. its automatic resubscribes), {"stream_status": {...}}
//                 when a Subscribe stream ends, and {"connection_lost": true}.
//   blocked-subscribe
//                 Momento's blocked-connection retry test, against the test-admin API on --admin-port: subscribe;
//                 after --block-after heartbeats (default 5) GET /block, and once it answered {"blocked":
//                 {"heartbeats"}}; whenever the SDK reports the connection lost, {"connection_lost":
//                 {"heartbeats_since_block"}} (null before the block is answered); --quiet-ms after the first
//                 loss since the block (default 2000), {"quiet": {"heartbeats_since_block",
//                 "losses_since_block"}}; then, on a line on stdin, GET /unblock,
//                 {"unblocked": true}; at the next heartbeat or item, {"resumed": {...}}. Items print as with
//                 subscribe; exits 0 after --count items. (The SDK's first stream ends at its 5 s deadline, which
//                 it reports as a lost connection too: block after more than 5 s to see the block detected.)
//   cache         create --cache (twice: success, already_exists), list, delete (twice:
//                 success, NOT_FOUND error), list again.
//   create-cache  create --cache; prints {"create_cache": "success"|"already_exists"}.
//   delete-cache  delete --cache; prints {"delete_cache": "success"}.
//   webhook       TopicClient's webhook calls, one per --action (repeatable, in order): put (--webhook, --topic,
//                 --url), list, get-secret, rotate, delete. Prints {"put": {"secret"}}, {"list": [{name, topic,
//                 url}]}, {"get_secret": {"secret", "webhook", "cache"}}, {"rotate": {"secret"}}, {"delete": {}}; an
//                 error response prints {"webhook_error": {...}} and, with --keep-going, goes on (else exit 1).
//
// --fault JSON adds the SDK's own ExperimentalMomentoLocalTestConfigMiddleware (what Momento's tests use against
// Momento Local) with that metadata object, e.g. '{"requestId":"r1","returnError":"SERVER_UNAVAILABLE",
// "errorRpcs":["_PublishRequest"],"errorCount":2}' (MomentoErrorCode and MomentoRPCMethod values).
// publish then continues after a failed publish with --keep-going, printing {"publish_error": {...}}.
//
// Exit codes: 0 ok, 1 an SDK error response ({"error": {...}} on stdout), 2 usage error or
// crash, 3 subscribe timed out.
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';

const require = createRequire(import.meta.url);
const sdk = require('@gomomento/sdk');
// Not exported from the package index; Momento's own tests import it from here.
const {
  ExperimentalMomentoLocalTestConfigMiddleware,
} = require('@gomomento/sdk/dist/src/config/middleware/experimental-momento-local-test-config-middleware');
const {
  CacheClient,
  Configurations,
  CreateCache,
  CredentialProvider,
  DefaultMomentoLoggerFactory,
  DefaultMomentoLoggerLevel,
  DeleteCache,
  ListCaches,
  TopicClient,
  TopicConfigurations,
  TopicPublish,
  TopicSubscribe,
} = sdk;

// ---------------------------------------------------------------- arguments
const USAGE =
  'usage: node interop.mjs <publish|subscribe|blocked-subscribe|cache|create-cache|delete-cache|webhook> ' +
  '--host H --port P --cache NAME [--topic T] [--count N] [--seconds S] [--heartbeats] ' +
  '[--trace] [--binary] [--interval-ms MS] [--verbose] [--fault JSON] [--keep-going] ' +
  '[--admin-port P] [--block-after N] [--quiet-ms MS]';

function usage(msg) {
  process.stderr.write(`${msg ? msg + '\n' : ''}${USAGE}\n`);
  process.exit(2);
}

let parsed;
try {
  parsed = parseArgs({
    allowPositionals: true,
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string' },
      cache: { type: 'string' },
      topic: { type: 'string', default: 'topic' },
      count: { type: 'string' },
      seconds: { type: 'string', default: '30' },
      'interval-ms': { type: 'string', default: '0' },
      heartbeats: { type: 'boolean', default: false },
      trace: { type: 'boolean', default: false },
      binary: { type: 'boolean', default: false },
      verbose: { type: 'boolean', default: false },
      fault: { type: 'string' },
      'keep-going': { type: 'boolean', default: false },
      action: { type: 'string', multiple: true, default: [] },
      webhook: { type: 'string', default: 'hook' },
      url: { type: 'string', default: '' },
      'admin-port': { type: 'string' },
      'block-after': { type: 'string', default: '5' },
      'quiet-ms': { type: 'string', default: '2000' },
    },
  });
} catch (e) {
  usage(e.message);
}
const opts = parsed.values;
const scenario = parsed.positionals[0];
if (parsed.positionals.length !== 1) usage('exactly one scenario expected');
if (!opts.port || !/^\d+$/.test(opts.port)) usage('--port is required');
if (!opts.cache) usage('--cache is required');
for (const k of ['count', 'seconds', 'interval-ms', 'admin-port', 'block-after', 'quiet-ms']) {
  if (opts[k] !== undefined && !/^\d+(\.\d+)?$/.test(opts[k])) usage(`--${k} must be a number`);
}
const port = Number(opts.port);
const count = opts.count === undefined ? undefined : Number(opts.count);
const seconds = Number(opts.seconds);
const intervalMs = Number(opts['interval-ms']);

// ---------------------------------------------------------------- output helpers
function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function errorInfo(op, resp) {
  // resp: a *.Error response object (or an SdkError).
  const inner = typeof resp.innerException === 'function' ? resp.innerException() : resp;
  const grpc = inner && typeof inner.transportDetails === 'function' ? inner.transportDetails()?.grpc : undefined;
  return {
    op,
    code: resp.errorCode(),
    message: typeof resp.message === 'function' ? resp.message() : String(resp.message),
    grpc_code: grpc?.code ?? null,
  };
}

function failWith(op, resp) {
  emit({ error: errorInfo(op, resp) });
  process.stderr.write(`interop: ${op} failed: ${resp.toString()}\n`);
  process.exit(1);
}

const loggerFactory = new DefaultMomentoLoggerFactory(
  opts.verbose ? DefaultMomentoLoggerLevel.TRACE : DefaultMomentoLoggerLevel.ERROR,
);
const credentialProvider = CredentialProvider.forMomentoLocal({ hostname: opts.host, port });

function topicConfiguration(extraMiddlewares = []) {
  const middlewares = [...extraMiddlewares];
  if (opts.fault) middlewares.push(new ExperimentalMomentoLocalTestConfigMiddleware(JSON.parse(opts.fault)));
  const configuration = TopicConfigurations.Default.latest(loggerFactory);
  return middlewares.length ? configuration.withMiddlewares(middlewares) : configuration;
}

// ---------------------------------------------------------------- publish
async function runPublish() {
  const n = count ?? 1;
  const client = new TopicClient({ configuration: topicConfiguration(), credentialProvider });
  const enc = new TextEncoder();
  for (let i = 1; i <= n; i++) {
    const text = `msg-${i}`;
    const resp = await client.publish(opts.cache, opts.topic, opts.binary ? enc.encode(text) : text);
    if (!(resp instanceof TopicPublish.Success)) {
      if (!opts['keep-going']) failWith('publish', resp);
      emit({ publish_error: errorInfo('publish', resp) });
    }
    if (intervalMs > 0 && i < n) await new Promise(r => setTimeout(r, intervalMs));
  }
  emit({ published: n });
  process.exit(0); // TopicClient has no close() in this SDK version

}

// ---------------------------------------------------------------- subscribe
// This SDK version's TopicItem exposes value, sequence number and token id but not the
// sequence page. The SDK stores the page of each item on the subscription's
// SubscriptionState (lastTopicSequencePage) synchronously right before calling onItem
// (node_modules/@gomomento/sdk/dist/src/internal/pubsub-client.js, prepareDataCallback), so an
// accessor on the prototype lets us observe it exactly. The SDK's sdk-core is a single
// hoisted copy, so this is the same class the SDK uses.
function hookSequencePage() {
  const { SubscriptionState } = require('@gomomento/sdk-core/dist/src/internal/subscription-state');
  const state = { page: undefined };
  Object.defineProperty(SubscriptionState.prototype, 'lastTopicSequencePage', {
    configurable: true,
    get() {
      return this._tidingsLastPage;
    },
    set(v) {
      this._tidingsLastPage = v;
      state.page = v;
    },
  });
  return state;
}

// Middleware (public SDK API) used with --trace to report what the SDK sends on the wire.
function traceMiddleware() {
  return {
    onNewRequest() {
      let isSubscribe = false;
      return {
        onRequestMetadata: async m => m,
        onRequestBody: async m => {
          if (m.constructorName() === '_SubscriptionRequest') {
            isSubscribe = true;
            const r = m._grpcMessage;
            emit({
              subscribe_request: {
                resume_at_topic_sequence_number: r.resume_at_topic_sequence_number,
                sequence_page: r.sequence_page,
              },
            });
          }
          return m;
        },
        onResponseMetadata: async m => m,
        onResponseBody: async m => m,
        onResponseStatus: async s => {
          if (isSubscribe) {
            const st = s._grpcStatus;
            emit({ stream_status: { code: st.code, details: st.details } });
          }
          return s;
        },
      };
    },
  };
}

async function runSubscribe() {
  const pageState = hookSequencePage();
  const configuration = topicConfiguration(opts.trace ? [traceMiddleware()] : []);
  const client = new TopicClient({ configuration, credentialProvider });

  let ready = false;
  let items = 0;
  let discontinuities = 0;
  let heartbeats = 0;
  let subscription;
  let finished = false;

  const finish = (code, extra) => {
    if (finished) return;
    finished = true;
    emit({ done: { items, discontinuities, heartbeats, ...extra } });
    try {
      subscription?.unsubscribe();
    } catch {
      // ignore
    }
    process.exit(code);
  };
  const markReady = () => {
    if (!ready) {
      ready = true;
      emit({ ready: true });
    }
  };

  const timer = setTimeout(() => {
    process.stderr.write(`interop: subscribe timed out after ${seconds}s with ${items} item(s)\n`);
    finish(3, { timeout: true });
  }, seconds * 1000);

  const resp = await client.subscribe(opts.cache, opts.topic, {
    onItem: item => {
      markReady();
      const v = item.value();
      const binary = typeof v !== 'string';
      items++;
      emit({
        item: {
          value: binary ? Buffer.from(v).toString('base64') : v,
          binary,
          sequence_number: item.sequenceNumber(),
          sequence_page: pageState.page ?? null,
          token_id: item.tokenId() ?? null,
        },
      });
      if (count !== undefined && items >= count) {
        clearTimeout(timer);
        finish(0);
      }
    },
    onDiscontinuity: d => {
      markReady();
      discontinuities++;
      emit({
        discontinuity: {
          last_topic_sequence: d.lastSequenceNumber(),
          new_topic_sequence: d.newSequenceNumber(),
          new_sequence_page: d.newSequencePage(),
        },
      });
    },
    onHeartbeat: () => {
      markReady();
      heartbeats++;
      if (opts.heartbeats) emit({ heartbeat: {} });
    },
    onConnectionLost: () => {
      if (opts.trace) emit({ connection_lost: true });
    },
    onError: err => {
      // The SDK calls onError only for errors it will not retry (it has already
      // unsubscribed), or for a malformed stream item.
      clearTimeout(timer);
      emit({ error: errorInfo('subscribe', err) });
      process.stderr.write(`interop: subscription error: ${err.toString()}\n`);
      finished = true;
      process.exit(1);
    },
  });

  if (resp instanceof TopicSubscribe.Subscription) {
    subscription = resp;
    markReady();
    if (count === 0) {
      clearTimeout(timer);
      finish(0);
    }
  } else {
    clearTimeout(timer);
    failWith('subscribe', resp);
  }
}

// ---------------------------------------------------------------- blocked-subscribe
// The shape of Momento's "should pause subscription when admin port is blocked and resume subscription once admin
// port is unblocked" (topic-client-retry.test.ts), with items and a stdin gate so the caller can publish meanwhile.
async function testAdmin(path) {
  const resp = await fetch(`http://${opts.host}:${opts['admin-port']}${path}`);
  if (!resp.ok) throw new Error(`GET ${path} answered ${resp.status}`);
}

function deferred() {
  let resolve;
  const promise = new Promise(r => (resolve = r));
  return { promise, resolve };
}

async function runBlockedSubscribe() {
  if (opts['admin-port'] === undefined) usage('--admin-port is required');
  const blockAfter = Number(opts['block-after']);
  const configuration = topicConfiguration(opts.trace ? [traceMiddleware()] : []);
  const client = new TopicClient({ configuration, credentialProvider });
  const lines = (await import('node:readline')).createInterface({ input: process.stdin });
  const stdinLine = new Promise(resolve => lines.once('line', resolve));
  const enoughHeartbeats = deferred();
  const lostSinceBlock = deferred();
  const resumed = deferred();
  let heartbeats = 0;
  let items = 0;
  let connectionLosses = 0;
  let lossesAtBlock = null;
  let heartbeatsAtBlock = null;
  let unblocked = false;
  const sinceBlock = () => (heartbeatsAtBlock === null ? null : heartbeats - heartbeatsAtBlock);
  let subscription;
  const finish = code => {
    emit({ done: { items, heartbeats, connection_losses: connectionLosses } });
    subscription?.unsubscribe();
    process.exit(code);
  };
  setTimeout(() => {
    process.stderr.write(`interop: blocked-subscribe timed out after ${seconds}s with ${items} item(s)\n`);
    finish(3);
  }, seconds * 1000);

  const resp = await client.subscribe(opts.cache, opts.topic, {
    onItem: item => {
      items++;
      emit({ item: { value: item.value(), sequence_number: item.sequenceNumber() } });
      if (unblocked) resumed.resolve();
      if (count !== undefined && items >= count) finish(0);
    },
    onDiscontinuity: d => {
      emit({ discontinuity: { last_topic_sequence: d.lastSequenceNumber(), new_topic_sequence: d.newSequenceNumber() } });
    },
    onHeartbeat: () => {
      heartbeats++;
      if (heartbeats === blockAfter) enoughHeartbeats.resolve();
      if (unblocked) resumed.resolve();
    },
    onConnectionLost: () => {
      connectionLosses++;
      emit({ connection_lost: { heartbeats_since_block: sinceBlock() } });
      if (heartbeatsAtBlock !== null) lostSinceBlock.resolve();
    },
    onError: err => {
      emit({ error: errorInfo('subscribe', err) });
      process.exit(1);
    },
  });
  if (!(resp instanceof TopicSubscribe.Subscription)) failWith('subscribe', resp);
  subscription = resp;
  emit({ ready: true });

  await enoughHeartbeats.promise;
  await testAdmin('/block');
  // Counted from the answer on: a heartbeat that arrived while the request was on its way was not blocked.
  heartbeatsAtBlock = heartbeats;
  lossesAtBlock = connectionLosses;
  emit({ blocked: { heartbeats: heartbeatsAtBlock } });
  await lostSinceBlock.promise;
  // Bounded negative check: no heartbeat reaches a blocked port, on the old connection or a new one.
  await new Promise(r => setTimeout(r, Number(opts['quiet-ms'])));
  emit({ quiet: { heartbeats_since_block: sinceBlock(), losses_since_block: connectionLosses - lossesAtBlock } });
  await stdinLine;
  lines.close();
  await testAdmin('/unblock');
  unblocked = true;
  emit({ unblocked: true });
  await resumed.promise;
  emit({ resumed: { heartbeats_since_block: sinceBlock() } });
}

// ---------------------------------------------------------------- control plane
function cacheClient() {
  return new CacheClient({
    configuration: Configurations.Laptop.latest(loggerFactory),
    credentialProvider,
    defaultTtlSeconds: 60,
  });
}

async function createCache(client) {
  const r = await client.createCache(opts.cache);
  if (r instanceof CreateCache.Success) return 'success';
  if (r instanceof CreateCache.AlreadyExists) return 'already_exists';
  failWith('create_cache', r);
}

async function deleteCache(client, { allowError = false } = {}) {
  const r = await client.deleteCache(opts.cache);
  if (r instanceof DeleteCache.Success) return 'success';
  if (allowError && r instanceof DeleteCache.Error) return { error: errorInfo('delete_cache', r) };
  failWith('delete_cache', r);
}

async function listCaches(client) {
  const r = await client.listCaches();
  if (!(r instanceof ListCaches.Success)) failWith('list_caches', r);
  return r.getCaches().map(c => c.getName());
}

function expect(cond, what) {
  if (!cond) {
    process.stderr.write(`interop: unexpected result: ${what}\n`);
    process.exit(1);
  }
}

async function runCache() {
  const client = cacheClient();
  const first = await createCache(client);
  emit({ create_cache: first });
  expect(first === 'success', `first create_cache returned ${first}`);
  const second = await createCache(client);
  emit({ create_cache: second });
  expect(second === 'already_exists', `second create_cache returned ${second}`);
  const listed = await listCaches(client);
  emit({ list_caches: listed });
  expect(listed.includes(opts.cache), 'created cache missing from list_caches');
  emit({ delete_cache: await deleteCache(client) });
  const again = await deleteCache(client, { allowError: true });
  emit({ delete_cache: again });
  expect(again?.error?.code === 'NOT_FOUND_ERROR', 'second delete_cache did not fail with NOT_FOUND');
  const after = await listCaches(client);
  emit({ list_caches: after });
  expect(!after.includes(opts.cache), 'deleted cache still in list_caches');
  client.close();
  process.exit(0);
}

async function runCreateCache() {
  const client = cacheClient();
  emit({ create_cache: await createCache(client) });
  client.close();
  process.exit(0);
}

async function runDeleteCache() {
  const client = cacheClient();
  emit({ delete_cache: await deleteCache(client) });
  client.close();
  process.exit(0);
}

// ---------------------------------------------------------------- webhooks
async function runWebhook() {
  const client = new TopicClient({ configuration: topicConfiguration(), credentialProvider });
  const calls = {
    put: async () => {
      const r = await client.putWebhook(opts.cache, opts.webhook, { topicName: opts.topic, destination: opts.url });
      return r instanceof sdk.PutWebhook.Success ? { secret: r.secretString() } : r;
    },
    list: async () => {
      const r = await client.listWebhooks(opts.cache);
      if (!(r instanceof sdk.ListWebhooks.Success)) return r;
      return r.getWebhooks().map(w => ({
        cache: w.id.cacheName, name: w.id.webhookName, topic: w.topicName, url: w.destination.url(),
      }));
    },
    'get-secret': async () => {
      const r = await client.getWebhookSecret(opts.cache, opts.webhook);
      if (!(r instanceof sdk.GetWebhookSecret.Success)) return r;
      return { secret: r.secret(), webhook: r.webhookName(), cache: r.cacheName() };
    },
    rotate: async () => {
      const r = await client.rotateWebhookSecret(opts.cache, opts.webhook);
      return r instanceof sdk.RotateWebhookSecret.Success ? { secret: r.secret() } : r;
    },
    delete: async () => {
      const r = await client.deleteWebhook(opts.cache, opts.webhook);
      return r instanceof sdk.DeleteWebhook.Success ? {} : r;
    },
  };
  for (const action of opts.action) {
    if (!calls[action]) usage(`unknown --action ${action}`);
    const result = await calls[action]();
    if (result && typeof result.errorCode === 'function') {
      emit({ webhook_error: { action, ...errorInfo(action, result) } });
      if (!opts['keep-going']) process.exit(1);
    } else {
      emit({ [action.replace('-', '_')]: result });
    }
  }
  process.exit(0);
}

// ---------------------------------------------------------------- main
const scenarios = {
  publish: runPublish,
  subscribe: runSubscribe,
  'blocked-subscribe': runBlockedSubscribe,
  cache: runCache,
  'create-cache': runCreateCache,
  'delete-cache': runDeleteCache,
  webhook: runWebhook,
};
if (!scenarios[scenario]) usage(`unknown scenario: ${scenario}`);
scenarios[scenario]().catch(e => {
  process.stderr.write(`interop: crashed: ${e?.stack ?? e}\n`);
  process.exit(2);
});
