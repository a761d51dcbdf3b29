#!/usr/bin/env node
// Interop harness: drives tidings with Momento's web SDK (@gomomento/sdk-web), which speaks gRPC-web over
// XMLHttpRequest, running in jsdom as Momento's own web-SDK tests do (jest's jsdom environment: the page's window
// is the global object). jsdom's XMLHttpRequest enforces CORS as a browser does: the page's origin (--origin)
// differs from the server's, so every call is preceded by a preflight (OPTIONS).
//
// Usage:
//   node tests/node/web_interop.mjs <scenario> --endpoint http://127.0.0.1:PORT [--token T | --token -]
//        [--cache NAME] [--topic T] [--count N] [--seconds S] [--heartbeats] [--binary] [--size BYTES]
//        [--interval-ms MS] [--origin URL] [--trace] [--verbose] [--keep-going] [--stdin-commands]
//        [--control-endpoint URL] [--token-endpoint URL] [--scope S] [--expires-seconds N] [--token-id ID]
//        [--action A]... [--webhook NAME] [--url URL]
//
// --endpoint is the server's gRPC-web base URL; it is the cache, control and token endpoint unless
// --control-endpoint / --token-endpoint say otherwise. The credential is
// CredentialProvider.fromString({apiKey: token, endpointOverrides: {cacheEndpoint, controlEndpoint,
// tokenEndpoint}}); without --token (and without $MOMENTO_API_KEY) it is CredentialProvider.forMomentoLocal with
// the same endpointOverrides (no authorization header). --token - reads the token from stdin's first line.
//
// Scenarios (one JSON object per line on stdout):
//   ping          CacheClient.ping(); then {"ping": "ok"}.
//   publish       publish --count (default 1) messages "msg-<i>" (i from 1; --binary sends them as UTF-8 bytes;
//                 --size N sends N bytes instead: "x" repeated, or bytes i % 256 with --binary), --interval-ms
//                 apart; then {"published": N}. An error prints {"publish_error": {...}} and exits 1, or goes on
//                 with --keep-going.
//   subscribe     {"ready": true} once subscribed, then {"item": {...}} / {"discontinuity": {...}} (and
//                 {"heartbeat": {}} with --heartbeats; {"connection_lost": true} when the SDK reports it). Exits 0
//                 after --count items, 3 after --seconds (default 30). With --stdin-commands, a line
//                 "unsubscribe" on stdin unsubscribes ({"unsubscribed": true}; the process stays until "exit" or
//                 the end of stdin) and "exit" exits 0.
//   cache         create --cache (twice: success, already_exists), list, delete (twice: success, NOT_FOUND
//                 error), list again; exits 1 on an unexpected result.
//   create-cache  {"create_cache": "success"|"already_exists"|{"error": {...}}}.
//   delete-cache  {"delete_cache": "success"|{"error": {...}}}.
//   list-caches   {"list_caches": [names]} or {"error": {...}}.
//   token         AuthClient.generateDisposableToken(--scope, ExpiresIn.seconds(--expires-seconds, default
//                 600), {tokenId: --token-id}) with --scope publish-subscribe (default), subscribe-only or
//                 publish-only on --cache / --topic; then {"token": {"auth_token", "endpoint", "expires_at"}}.
//   webhook       TopicClient's webhook calls, one per --action (repeatable, in order): put (--webhook, --topic,
//                 --url), list, get-secret, rotate, delete; prints what interop.mjs's webhook scenario prints.
//
// --trace prints, for every XMLHttpRequest the SDK makes, {"xhr_request": {method, url, headers, body}} (body
// as sent: base64 text) and {"xhr_response": {status, headers, body}} when it completes. jsdom makes the CORS
// preflight itself; the server sees it, the page does not.
//
// Exit codes: 0 ok, 1 an SDK error response ({"error": {...}} on stdout), 2 usage error or crash, 3 subscribe
// timed out.
import { createRequire } from 'node:module';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';

import { JSDOM } from 'jsdom';

const require = createRequire(import.meta.url);

// ---------------------------------------------------------------- arguments
const USAGE =
  'usage: node web_interop.mjs <ping|publish|subscribe|cache|create-cache|delete-cache|list-caches|token|webhook> ' +
  '--endpoint URL [--token T|-] [--cache NAME] [--topic T] [--count N] [--seconds S] [--heartbeats] [--binary] ' +
  '[--size BYTES] [--interval-ms MS] [--origin URL] [--trace] [--verbose] [--keep-going] [--stdin-commands] ' +
  '[--control-endpoint URL] [--token-endpoint URL] [--scope S] [--expires-seconds N] [--token-id ID] ' +
  '[--action A]... [--webhook NAME] [--url URL]';

function usage(msg) {
  process.stderr.write(`${msg ? msg + '\n' : ''}${USAGE}\n`);
  process.exit(2);
}

let parsed;
try {
  parsed = parseArgs({
    allowPositionals: true,
    options: {
      endpoint: { type: 'string' },
      'control-endpoint': { type: 'string' },
      'token-endpoint': { type: 'string' },
      token: { type: 'string' },
      origin: { type: 'string', default: 'http://localhost' },
      cache: { type: 'string', default: 'cache' },
      topic: { type: 'string', default: 'topic' },
      count: { type: 'string' },
      seconds: { type: 'string', default: '30' },
      size: { type: 'string' },
      'interval-ms': { type: 'string', default: '0' },
      heartbeats: { type: 'boolean', default: false },
      binary: { type: 'boolean', default: false },
      trace: { type: 'boolean', default: false },
      verbose: { type: 'boolean', default: false },
      'keep-going': { type: 'boolean', default: false },
      'stdin-commands': { type: 'boolean', default: false },
      scope: { type: 'string', default: 'publish-subscribe' },
      'expires-seconds': { type: 'string', default: '600' },
      'token-id': { type: 'string' },
      action: { type: 'string', multiple: true, default: [] },
      webhook: { type: 'string', default: 'hook' },
      url: { type: 'string', default: '' },
    },
  });
} catch (e) {
  usage(e.message);
}
const opts = parsed.values;
const scenario = parsed.positionals[0];
if (parsed.positionals.length !== 1) usage('exactly one scenario expected');
if (!opts.endpoint || !/^https?:\/\//.test(opts.endpoint)) usage('--endpoint http(s)://HOST:PORT is required');
for (const k of ['count', 'seconds', 'size', 'interval-ms', 'expires-seconds']) {
  if (opts[k] !== undefined && !/^\d+(\.\d+)?$/.test(opts[k])) usage(`--${k} must be a number`);
}
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
    code: typeof resp.errorCode === 'function' ? resp.errorCode() : null,
    message: typeof resp.message === 'function' ? resp.message() : String(resp.message),
    grpc_code: grpc?.code ?? null,
    grpc_details: grpc?.details ?? null,
    grpc_metadata: grpc?.metadata ?? null,
  };
}

function failWith(op, resp) {
  emit({ error: errorInfo(op, resp) });
  process.stderr.write(`web_interop: ${op} failed: ${resp.toString()}\n`);
  process.exit(1);
}

// Lines of stdin, one at a time: the token (--token -) and --stdin-commands share it.
const stdinLines = (() => {
  let reader;
  return () => {
    reader ??= createInterface({ input: process.stdin })[Symbol.asyncIterator]();
    return reader.next().then(r => (r.done ? null : r.value.trim()));
  };
})();

// ---------------------------------------------------------------- the page: jsdom as the global environment
// What jest's jsdom environment gives Momento's web-SDK tests: a window at a URL of its own (jest's default is
// http://localhost/), whose globals the SDK and grpc-web use: XMLHttpRequest (every call), navigator (the SDK's
// runtime-version header parses navigator.userAgent), window, self, document and location.
function installPage() {
  const dom = new JSDOM('<!doctype html><html><head></head><body></body></html>', {
    url: new URL('/', opts.origin).href,
  });
  const { window } = dom;
  if (opts.trace) traceXhr(window);
  for (const name of [
    'window',
    'self',
    'document',
    'navigator',
    'location',
    'XMLHttpRequest',
    'XMLHttpRequestEventTarget',
    'XMLHttpRequestUpload',
    'ProgressEvent',
    'FormData',
    'Blob',
  ]) {
    Object.defineProperty(globalThis, name, { value: window[name], configurable: true, writable: true });
  }
  return dom;
}

function responseHeaders(xhr) {
  const headers = {};
  for (const line of xhr.getAllResponseHeaders().split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return headers;
}

function traceXhr(window) {
  const proto = window.XMLHttpRequest.prototype;
  const { open, setRequestHeader, send } = proto;
  proto.open = function (method, url, ...rest) {
    this._tidingsTrace = { method, url, headers: {} };
    return open.call(this, method, url, ...rest);
  };
  proto.setRequestHeader = function (name, value) {
    if (this._tidingsTrace) this._tidingsTrace.headers[name.toLowerCase()] = value;
    return setRequestHeader.call(this, name, value);
  };
  proto.send = function (body) {
    const trace = this._tidingsTrace ?? {};
    emit({ xhr_request: { ...trace, body: typeof body === 'string' ? body : body == null ? null : '<binary>' } });
    this.addEventListener('loadend', () => {
      let text = null;
      try {
        text = this.responseType === '' || this.responseType === 'text' ? this.responseText : '<binary>';
      } catch {
        text = null;
      }
      emit({ xhr_response: { url: trace.url, status: this.status, headers: responseHeaders(this), body: text } });
    });
    return send.call(this, body);
  };
}

installPage();
// Loaded after the page is installed, as in a browser bundle: grpc-web and the SDK find their globals at once.
const sdk = require('@gomomento/sdk-web');
const {
  AuthClient,
  CacheClient,
  Configurations,
  CreateCache,
  CredentialProvider,
  DefaultMomentoLoggerFactory,
  DefaultMomentoLoggerLevel,
  DeleteCache,
  DisposableTokenScopes,
  ExpiresIn,
  GenerateDisposableToken,
  ListCaches,
  TopicClient,
  TopicConfigurations,
  TopicPublish,
  TopicSubscribe,
} = sdk;

const loggerFactory = new DefaultMomentoLoggerFactory(
  opts.verbose ? DefaultMomentoLoggerLevel.TRACE : DefaultMomentoLoggerLevel.ERROR,
);

async function credentialProvider() {
  const endpointOverrides = {
    cacheEndpoint: opts.endpoint,
    controlEndpoint: opts['control-endpoint'] ?? opts.endpoint,
    tokenEndpoint: opts['token-endpoint'] ?? opts.endpoint,
  };
  let token = opts.token ?? process.env.MOMENTO_API_KEY;
  if (token === '-') token = await stdinLines();
  if (!token) return CredentialProvider.forMomentoLocal({ endpointOverrides });
  return CredentialProvider.fromString({ apiKey: token, endpointOverrides });
}

let credentials;
try {
  credentials = await credentialProvider();
} catch (e) {
  // The SDK refuses a token it cannot decode (neither a JWT nor Momento's base64 {endpoint, api_key} form).
  emit({ crash: String(e?.message ?? e) });
  process.stderr.write(`web_interop: bad credential: ${e?.stack ?? e}\n`);
  process.exit(2);
}

function cacheClient() {
  return new CacheClient({
    configuration: Configurations.Laptop.v1(loggerFactory),
    credentialProvider: credentials,
    defaultTtlSeconds: 60,
  });
}

function topicClient() {
  return new TopicClient({ configuration: TopicConfigurations.Default.latest(loggerFactory), credentialProvider: credentials });
}

// ---------------------------------------------------------------- ping
async function runPing() {
  try {
    await cacheClient().ping(); // resolves, or throws grpc-web's RpcError ({code, message, metadata})
  } catch (e) {
    emit({ error: { op: 'ping', code: null, message: String(e?.message ?? e), grpc_code: e?.code ?? null } });
    process.exit(1);
  }
  emit({ ping: 'ok' });
  process.exit(0);
}

// ---------------------------------------------------------------- publish
function publishValue(i) {
  const enc = new TextEncoder();
  if (opts.size !== undefined) {
    const size = Number(opts.size);
    if (opts.binary) return Uint8Array.from({ length: size }, (_, j) => (j + i) % 256);
    return 'x'.repeat(size);
  }
  const text = `msg-${i}`;
  return opts.binary ? enc.encode(text) : text;
}

async function runPublish() {
  const n = count ?? 1;
  const client = topicClient();
  for (let i = 1; i <= n; i++) {
    const resp = await client.publish(opts.cache, opts.topic, publishValue(i));
    if (!(resp instanceof TopicPublish.Success)) {
      emit({ publish_error: errorInfo('publish', resp) });
      if (!opts['keep-going']) process.exit(1);
    }
    if (intervalMs > 0 && i < n) await new Promise(r => setTimeout(r, intervalMs));
  }
  emit({ published: n });
  process.exit(0);
}

// ---------------------------------------------------------------- subscribe
async function runSubscribe() {
  const client = topicClient();
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
    process.stderr.write(`web_interop: subscribe timed out after ${seconds}s with ${items} item(s)\n`);
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
    onConnectionLost: () => emit({ connection_lost: true }),
    onError: err => {
      // Errors the SDK does not retry (it has already unsubscribed).
      clearTimeout(timer);
      emit({ error: errorInfo('subscribe', err) });
      process.stderr.write(`web_interop: subscription error: ${err.toString()}\n`);
      finished = true;
      process.exit(1);
    },
  });

  if (!(resp instanceof TopicSubscribe.Subscription)) {
    clearTimeout(timer);
    failWith('subscribe', resp);
  }
  subscription = resp;
  markReady();
  if (count === 0) {
    clearTimeout(timer);
    finish(0);
  }
  if (opts['stdin-commands']) await followStdinCommands(subscription, timer);
}

async function followStdinCommands(subscription, timer) {
  for (let line = await stdinLines(); line !== null; line = await stdinLines()) {
    if (line === 'unsubscribe') {
      clearTimeout(timer);
      subscription.unsubscribe();
      emit({ unsubscribed: true });
    } else if (line === 'exit') {
      break;
    } else if (line) {
      process.stderr.write(`web_interop: unknown command ${JSON.stringify(line)}\n`);
    }
  }
  process.exit(0);
}

// ---------------------------------------------------------------- caches
async function createCache(client) {
  const r = await client.createCache(opts.cache);
  if (r instanceof CreateCache.Success) return 'success';
  if (r instanceof CreateCache.AlreadyExists) return 'already_exists';
  return { error: errorInfo('create_cache', r) };
}

async function deleteCache(client) {
  const r = await client.deleteCache(opts.cache);
  if (r instanceof DeleteCache.Success) return 'success';
  return { error: errorInfo('delete_cache', r) };
}

async function listCaches(client) {
  const r = await client.listCaches();
  if (r instanceof ListCaches.Success) return r.getCaches().map(c => c.getName());
  return { error: errorInfo('list_caches', r) };
}

function expect(cond, what) {
  if (!cond) {
    process.stderr.write(`web_interop: unexpected result: ${what}\n`);
    process.exit(1);
  }
}

async function runCache() {
  const client = cacheClient();
  const first = await createCache(client);
  emit({ create_cache: first });
  expect(first === 'success', `first create_cache returned ${JSON.stringify(first)}`);
  const second = await createCache(client);
  emit({ create_cache: second });
  expect(second === 'already_exists', `second create_cache returned ${JSON.stringify(second)}`);
  const listed = await listCaches(client);
  emit({ list_caches: listed });
  expect(Array.isArray(listed) && listed.includes(opts.cache), 'created cache missing from list_caches');
  const deleted = await deleteCache(client);
  emit({ delete_cache: deleted });
  expect(deleted === 'success', `delete_cache returned ${JSON.stringify(deleted)}`);
  const again = await deleteCache(client);
  emit({ delete_cache: again });
  expect(again?.error?.code === 'NOT_FOUND_ERROR', 'second delete_cache did not fail with NOT_FOUND');
  const after = await listCaches(client);
  emit({ list_caches: after });
  expect(Array.isArray(after) && !after.includes(opts.cache), 'deleted cache still in list_caches');
  process.exit(0);
}

function single(op, result) {
  return async () => {
    const value = await result(cacheClient());
    emit({ [op]: value });
    process.exit(value?.error ? 1 : 0);
  };
}

// ---------------------------------------------------------------- tokens
const SCOPES = {
  'publish-subscribe': () => DisposableTokenScopes.topicPublishSubscribe(opts.cache, opts.topic),
  'subscribe-only': () => DisposableTokenScopes.topicSubscribeOnly(opts.cache, opts.topic),
  'publish-only': () => DisposableTokenScopes.topicPublishOnly(opts.cache, opts.topic),
};

async function runToken() {
  if (!SCOPES[opts.scope]) usage(`unknown --scope ${opts.scope}`);
  const client = new AuthClient({ credentialProvider: credentials });
  const props = opts['token-id'] === undefined ? undefined : { tokenId: opts['token-id'] };
  const r = await client.generateDisposableToken(
    SCOPES[opts.scope](),
    ExpiresIn.seconds(Number(opts['expires-seconds'])),
    props,
  );
  if (!(r instanceof GenerateDisposableToken.Success)) failWith('generate_disposable_token', r);
  emit({ token: { auth_token: r.authToken, endpoint: r.endpoint, expires_at: r.expiresAt.epoch() } });
  process.exit(0);
}

// ---------------------------------------------------------------- webhooks
async function runWebhook() {
  const client = topicClient();
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
  ping: runPing,
  publish: runPublish,
  subscribe: runSubscribe,
  cache: runCache,
  'create-cache': single('create_cache', createCache),
  'delete-cache': single('delete_cache', deleteCache),
  'list-caches': single('list_caches', listCaches),
  token: runToken,
  webhook: runWebhook,
};
if (!scenarios[scenario]) usage(`unknown scenario: ${scenario}`);
scenarios[scenario]().catch(e => {
  emit({ crash: String(e?.message ?? e) });
  process.stderr.write(`web_interop: crashed: ${e?.stack ?? e}\n`);
  process.exit(2);
});
