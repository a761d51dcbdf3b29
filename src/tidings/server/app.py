"""The composition root: builds store, engine, core and transports, runs them on one loop, stops them in order."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import ssl
import time
from collections.abc import Awaitable, Coroutine
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import grpc
import grpc.aio

from tidings.server._memory import return_freed_memory
from tidings.server._open_files import (
    DEFAULT_MAX_CONNECTIONS,
    max_connections_for,
    open_files_limit,
    raise_open_files_limit,
)
from tidings.server.auth import (
    ADMIN_KEY_ENV,
    SECRET_ENV,
    Authenticator,
    AuthPolicy,
    TokenSigner,
    load_or_create_admin_key,
    load_or_create_secret,
)
from tidings.server.config import Settings
from tidings.server.core import (
    CacheAlreadyExists,
    Engine,
    FailureLog,
    TopicsError,
    TopicsService,
    Unavailable,
    WebhookRegistry,
)
from tidings.server.engine.memory import MemoryEngine
from tidings.server.grpc._h2 import H2Server, tls_context
from tidings.server.grpc.server import build_grpc_server, build_h2_server
from tidings.server.http import ConnectionLimits, HttpServer
from tidings.server.store import DataDirectoryError, DataDirectoryLock
from tidings.server.store.sqlite import SqliteStore
from tidings.server.webhooks import RetryPolicy, WebhookDispatcher, WebhookLeases, WebhookSender

if TYPE_CHECKING:
    from tidings.server.engine.redis import RedisEngine
    from tidings.server.store.redis import RedisStore
    from tidings.server.testadmin import TestAdmin

logger = logging.getLogger("tidings.server")


_WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", "[::]", ""})
# Seconds between checks whether freed memory should go back to the system (`return_freed_memory`).
_TRIM_INTERVAL = 5.0


def _tls_key_pair(cert: Path, key: Path) -> tuple[bytes, bytes]:
    """(key, certificate chain) PEM bytes, checked to be a matching pair so that a bad file is named."""
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as error:
        raise OSError(f"cannot use --tls-cert {cert} with --tls-key {key}: {error}") from None
    return key.read_bytes(), cert.read_bytes()


def _background(coroutine: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
    """A server-owned task whose unexpected death is logged at once (it is awaited in `Server.stop`)."""
    task = asyncio.create_task(coroutine, name=name)

    def report(done: asyncio.Task[None]) -> None:
        if not done.cancelled() and done.exception() is not None:
            logger.error("background task %s died", name, exc_info=done.exception())

    task.add_done_callback(report)
    return task


def _count(number: int, noun: str) -> str:
    """``1 cache``, ``2 caches``."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def refuse_busy_port(host: str, port: int, reuse_port: bool = False) -> None:
    """`OSError` naming the address if ``host:port`` cannot be bound (checked before grpcio tries, which would
    print a line of its own first and a less clear error). Workers sharing the port (``reuse_port``) skip it."""
    if port == 0 or reuse_port:
        return
    try:
        family, kind, protocol, _, address = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        with socket.socket(family, kind, protocol) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as error:
        raise OSError(f"cannot listen on {_host_port(host, port)}: {error.strerror or error}") from None


async def _logged_failure(step: Awaitable[object], what: str) -> None:
    """Await one step of stopping; a failure is logged and stopping goes on."""
    try:
        await step
    except Exception:
        logger.exception("%s failed", what)


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


class Server:
    """A tidings server running on the current event loop.

    ``async with Server(settings) as server:`` starts it (``server.port`` is the bound gRPC port, also
    when ``settings.port`` is 0) and stops it gracefully on exit.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._service: TopicsService | None = None
        self._webhooks: WebhookRegistry | None = None
        self._dispatcher: WebhookDispatcher | None = None
        self._store: SqliteStore | RedisStore | None = None
        self._redis_engine: RedisEngine | None = None
        self._data_dir_lock: DataDirectoryLock | None = None
        self._grpc: grpc.aio.Server | H2Server | None = None
        self._test_admin: TestAdmin | None = None
        self._http: HttpServer | None = None
        self._housekeeping: asyncio.Task[None] | None = None
        self._key_watch: asyncio.Task[None] | None = None
        self._memory: asyncio.Task[None] | None = None
        self._webhook_watch: asyncio.Task[None] | None = None
        self._authenticator: Authenticator | None = None
        # Both refresh loops fail together while Redis is unreachable: one outage, a few lines (not one a loop);
        # it ends when neither fails, so one failing alone while the other works is one outage too.
        self._refresh_log = FailureLog(logger, "refreshing API keys and webhooks from the store")
        self._port = 0
        self._stopped = asyncio.Event()
        self._drain_cut = asyncio.Event()
        self._grpc_stopping: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        """The bound gRPC port."""
        if self._grpc is None:
            raise RuntimeError("server is not started")
        return self._port

    @property
    def endpoint(self) -> str:
        """``host:port`` of the gRPC listener."""
        return _host_port(self.settings.host, self.port)

    @property
    def http_port(self) -> int:
        """The bound HTTP port; 0 when HTTP is disabled (``settings.http_port`` 0)."""
        if self._grpc is None:
            raise RuntimeError("server is not started")
        return 0 if self._http is None else self._http.port

    @property
    def webhooks(self) -> WebhookRegistry:
        """The webhook registry (for in-process use and tests)."""
        if self._webhooks is None:
            raise RuntimeError("server is not started")
        return self._webhooks

    @property
    def service(self) -> TopicsService:
        """The topics service (for in-process use and tests)."""
        if self._service is None:
            raise RuntimeError("server is not started")
        return self._service

    async def start(self) -> None:
        """Open the store, load state, bind and start listening."""
        if self._service is not None:
            raise RuntimeError("server already started")
        settings = self.settings
        try:
            if settings.redis_url is None:  # the SQLite store: one server per data directory
                self._data_dir_lock = DataDirectoryLock(settings.data_dir)
                self._data_dir_lock.acquire()
            self._store = await self._open_store()
            try:
                self._authenticator = await self._open_authenticator(self._store)
            except OSError as error:  # the signing secret or admin key file
                raise DataDirectoryError.caused_by(settings.data_dir, error) from None
            engine = await self._open_engine()
            service = self._service = TopicsService(
                engine,
                self._store,
                settings.limits,
                heartbeat_interval=settings.heartbeat_interval,
                subscribe_latest=settings.subscribe_latest,
                cache_refresh_interval=settings.key_refresh_interval,
            )
            await service.start()
            webhooks = self._webhooks = WebhookRegistry(service, self._store)
            await webhooks.start()
            self._dispatcher = WebhookDispatcher(
                service,
                WebhookSender(timeout=settings.webhook_timeout, allow_private=settings.webhooks_reach_private),
                RetryPolicy(max_attempts=settings.webhook_max_attempts),
                leases=self._webhook_leases(),
            )
            self._dispatcher.start()
            await webhooks.add_listener(self._dispatcher)
            for cache_name in settings.create_caches:
                try:
                    await service.create_cache(cache_name)
                except CacheAlreadyExists:
                    pass
                except TopicsError as error:
                    raise ValueError(f"--create-cache {cache_name!r}: {error.message}") from None
            max_connections = self._max_connections()
            if settings.grpc_transport == "h2":
                await self._start_h2(service, self._authenticator, webhooks, max_connections)
            else:
                await self._start_grpcio(service, self._authenticator, webhooks, max_connections)
            if settings.test_admin_port is not None:
                await self._start_test_admin(settings.test_admin_port)
            self._housekeeping = _background(service.run_housekeeping(), "tidings-housekeeping")
            self._key_watch = _background(self._watch_keys(), "tidings-key-watch")
            self._memory = _background(return_freed_memory(_TRIM_INTERVAL), "tidings-memory")
            if self._store.shared:
                self._webhook_watch = _background(self._watch_webhooks(), "tidings-webhook-watch")
            if settings.http_port:
                self._http = HttpServer(
                    service,
                    self._authenticator.authenticate,
                    settings.host,
                    settings.http_port,
                    long_poll_timeout=settings.http_long_poll_timeout,
                    shutdown_grace=settings.shutdown_grace,
                    connections=ConnectionLimits(
                        max_connections,
                        settings.http_idle_timeout,
                        settings.request_timeout,
                        grpc_port=self._port,
                        max_per_address=settings.connections_per_address(max_connections),
                    ),
                    allowed_hosts=settings.http_allowed_hosts,
                    cors_origins=settings.cors_origins,
                    tls=(settings.tls_cert, settings.tls_key) if settings.tls_cert and settings.tls_key else None,
                    reuse_port=settings.workers > 1,
                    webhooks=webhooks,
                    webhook_statuses=self._dispatcher.statuses,
                )
                await self._http.start()
                if isinstance(self._grpc, H2Server):
                    self._grpc.http_port = self._http.port
        except BaseException:
            await self.stop()
            raise
        if settings.grpc_transport == "h2":
            logger.info("gRPC served by tidings' own HTTP/2 transport (--grpc-transport h2)")
        else:
            logger.info(
                "gRPC: up to %d calls may wait to be taken during a burst (--max-pending-calls)",
                settings.max_pending_calls,
            )
        if settings.fault_injection:
            logger.warning(
                "FAULT INJECTION IS ON (--fault-injection): any caller can make calls fail, wait or end their "
                "streams with Momento Local's request metadata; never run this way in production"
            )
        if self._http is not None:
            logger.info(
                "tidings listening on %s://%s (HTTP API, browser stream, console, /metrics)",
                self._http.scheme,
                _host_port(settings.host, self._http.port),
            )
        logger.info(
            "tidings listening on %s://%s (%s engine, data dir %s, %s, %s)",
            "grpcs" if settings.tls_cert else "grpc",
            self.endpoint,
            self.engine_name,
            settings.data_dir,
            _count(service.cache_count(), "cache"),
            "anonymous callers allowed" if settings.anonymous_allowed else "every call needs a token",
        )
        if settings.public_endpoint is None and settings.host in _WILDCARD_HOSTS:
            logger.warning(
                "listening on %s: minted tokens will name %s as their endpoint; set --public-endpoint to the "
                "address clients use",
                settings.host,
                self.endpoint,
            )

    async def _start_grpcio(
        self,
        service: TopicsService,
        authenticator: Authenticator,
        webhooks: WebhookRegistry | None,
        max_connections: int,
    ) -> None:
        """Build, bind and start the grpc.aio server."""
        settings = self.settings
        self._grpc = build_grpc_server(
            service,
            authenticator,
            lambda: self.public_endpoint,
            fault_injection=settings.fault_injection,
            max_pending_calls=settings.max_pending_calls,
            reuse_port=settings.workers > 1,
            max_connections=max_connections,
            handshake_timeout=settings.request_timeout,
            webhooks=webhooks,
            max_streams_per_connection=settings.max_streams_per_connection,
            idle_timeout=settings.grpc_idle_timeout,
        )
        host, port = self._transport_address
        address = _host_port(host, port)
        refuse_busy_port(host, port, reuse_port=settings.workers > 1)
        try:
            if settings.tls_cert is not None and settings.tls_key is not None:
                credentials = grpc.ssl_server_credentials([_tls_key_pair(settings.tls_cert, settings.tls_key)])
                self._port = self._grpc.add_secure_port(address, credentials)
            else:
                self._port = self._grpc.add_insecure_port(address)
        except RuntimeError as error:
            raise OSError(f"cannot listen on {address}: {error}") from None
        if self._port == 0:
            raise OSError(f"cannot listen on {address}")
        await self._grpc.start()

    async def _start_h2(
        self,
        service: TopicsService,
        authenticator: Authenticator,
        webhooks: WebhookRegistry | None,
        max_connections: int,
    ) -> None:
        """Build and bind tidings' own HTTP/2 gRPC server (``--grpc-transport h2``)."""
        settings = self.settings
        host, port = self._transport_address
        refuse_busy_port(host, port, reuse_port=settings.workers > 1)
        ssl_context = None
        if settings.tls_cert is not None and settings.tls_key is not None:
            _tls_key_pair(settings.tls_cert, settings.tls_key)  # names a bad file
            ssl_context = tls_context(settings.tls_cert, settings.tls_key)
        server = self._grpc = build_h2_server(
            service,
            authenticator,
            lambda: self.public_endpoint,
            fault_injection=settings.fault_injection,
            reuse_port=settings.workers > 1,
            ssl_context=ssl_context,
            webhooks=webhooks,
            max_connections=max_connections,
            handshake_timeout=settings.request_timeout,
            max_streams_per_connection=settings.max_streams_per_connection,
            max_connections_per_address=settings.connections_per_address(max_connections),
            idle_timeout=settings.grpc_idle_timeout,
        )
        try:
            self._port = await server.start(host, port)
        except OSError as error:
            raise OSError(f"cannot listen on {_host_port(host, port)}: {error}") from None

    @property
    def _transport_address(self) -> tuple[str, int]:
        """Where the gRPC transport listens: the configured address, or with ``--test-admin-port`` a loopback port
        of its own behind the relay that the test-admin API blocks."""
        if self.settings.test_admin_port is not None:
            from tidings.server.testadmin import UPSTREAM_HOST

            return UPSTREAM_HOST, 0
        return self.settings.host, self.settings.port

    async def _start_test_admin(self, api_port: int) -> None:
        """Put the relay on the configured gRPC address in front of the transport, and serve the test-admin API."""
        from tidings.server.testadmin import TestAdmin

        self._test_admin = TestAdmin(self._port)
        self._port = await self._test_admin.start(self.settings.host, self.settings.port, api_port)

    async def _open_engine(self) -> Engine:
        """The memory engine, or with ``--redis-url`` the Redis engine, connected."""
        limits = self.settings.limits
        if self.settings.redis_url is None:
            return MemoryEngine(limits.retention_messages, limits.retention_bytes, limits.max_retained_bytes)
        from tidings.server.engine.redis import RedisEngine

        engine = RedisEngine(
            self.settings.redis_url,
            limits.retention_messages,
            limits.retention_bytes,
            limits.topic_idle_ttl,
            cluster=self.settings.redis_cluster,
            # Test hook (race tests): seconds between a channel subscription and the stream read.
            follow_delay=float(os.environ.get("TIDINGS_TEST_FOLLOW_DELAY", "0")),
        )
        try:
            await engine.start()
        except BaseException as error:
            await _logged_failure(engine.close(), "closing the Redis engine")
            if isinstance(error, Unavailable):
                raise OSError(f"cannot use {self.settings.redis_flag}: {error.message}") from None
            raise
        self._redis_engine = engine
        return engine

    @property
    def engine_name(self) -> str:
        """What holds the topics: ``memory`` or ``redis at host:port``."""
        return "memory" if self._redis_engine is None else self._redis_engine.name

    def _max_connections(self) -> int:
        """Connections allowed per transport: ``--max-connections``, within what the open-files limit allows."""
        limit = open_files_limit()
        allowed = max_connections_for(limit)
        requested = self.settings.max_connections
        if requested is not None and requested > allowed:
            logger.warning(
                "--max-connections %d does not fit the open-files limit of %d; using %d per transport",
                requested,
                limit,
                allowed,
            )
        max_connections = min(requested or DEFAULT_MAX_CONNECTIONS, allowed)
        logger.info("at most %d connections per transport (open-files limit %d)", max_connections, limit)
        return max_connections

    @property
    def public_endpoint(self) -> str:
        """host:port that minted tokens tell clients to use (``--public-endpoint``, else the listener)."""
        return self.settings.public_endpoint or self.endpoint

    async def _open_store(self) -> SqliteStore | RedisStore:
        """The SQLite store in the data directory, or with ``--redis-url`` the store in Redis."""
        if self.settings.redis_url is None:
            return await SqliteStore.open(self.settings.data_dir)
        from tidings.server.store.redis import RedisStore

        # Holds nothing but the Redis deployment's admin key file (admin-redis-<id>.key), if this node writes it.
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            return await RedisStore.open(self.settings.redis_url, cluster=self.settings.redis_cluster)
        except Unavailable as error:
            raise OSError(f"cannot use {self.settings.redis_flag}: {error.message}") from None

    async def _open_authenticator(self, store: SqliteStore | RedisStore) -> Authenticator:
        data_dir = self.settings.data_dir
        if isinstance(store, SqliteStore) or os.environ.get(SECRET_ENV):
            try:
                signer = TokenSigner(load_or_create_secret(data_dir))
            except ValueError as error:
                if os.environ.get(SECRET_ENV):
                    raise
                raise DataDirectoryError(data_dir, str(error)) from None  # secret.key holds no usable secret
        else:  # every node signs and verifies tokens with the secret in Redis
            signer = TokenSigner(await store.load_or_create_secret())
        admin_key = await load_or_create_admin_key(data_dir, store)
        if admin_key.path is not None:
            logger.info("admin key (super-user) is in %s", admin_key.path)
        elif admin_key.configured is not None:
            only = "; no other admin key is valid" if admin_key.exclusive else ""
            logger.info("admin key (super-user) is %s%s", ADMIN_KEY_ENV, only)
        # else: the deployment's key is another server's, and load_or_create_admin_key logged where it is
        authenticator = Authenticator(
            signer,
            AuthPolicy(allow_anonymous=self.settings.anonymous_allowed),
            admin_key=admin_key.configured,
        )
        await authenticator.refresh(store)
        return authenticator

    async def _watch_keys(self) -> None:
        """Pick up API keys created or revoked and tokens revoked by other processes (the CLI), and end the
        streams of expired tokens, within the refresh interval."""
        assert self._store is not None
        assert self._authenticator is not None
        assert self._service is not None
        while True:
            await asyncio.sleep(self.settings.key_refresh_interval)
            self._service.expire_subscriptions(time.time())
            try:
                revoked = await self._authenticator.refresh(self._store)
            except Exception as error:
                self._refresh_failed(error, "keys")
                continue
            self._refresh_log.succeeded(by="keys")
            for key_id in revoked.key_ids:
                ended = self._service.revoke_key(key_id)
                logger.info("API key %s revoked (with the tokens it minted); ended %d subscriptions", key_id, ended)
            for token_id, minted_until in revoked.token_ids.items():
                ended = self._service.revoke_token(token_id, minted_until)
                logger.info("token id %r revoked; ended %d subscriptions", token_id, ended)

    def _webhook_leases(self) -> WebhookLeases | None:
        """With Redis, webhooks are leased: one node at a time delivers each (None: this node delivers all)."""
        if self._store is None or not self._store.shared:
            return None
        from tidings.server.store.redis import RedisStore

        assert isinstance(self._store, RedisStore)
        # Test hook (takeover tests): seconds a dead node's leases outlive it.
        return WebhookLeases(self._store, ttl=float(os.environ.get("TIDINGS_TEST_WEBHOOK_LEASE_SECONDS", "10")))

    async def _watch_webhooks(self) -> None:
        """Pick up webhooks other nodes created, changed or deleted (a shared store) within the refresh interval."""
        from tidings.server.store.redis import RedisStore

        assert isinstance(self._store, RedisStore)
        assert self._webhooks is not None
        seen = -1  # refresh once at once: a change may have come since the registry loaded
        while True:
            await asyncio.sleep(self.settings.key_refresh_interval)
            try:
                version = await self._store.webhooks_version()
                if version != seen:
                    await self._webhooks.refresh()
                    seen = version
            except Exception as error:
                self._refresh_failed(error, "webhooks")
            else:
                self._refresh_log.succeeded(by="webhooks")

    def _refresh_failed(self, error: Exception, loop: str) -> None:
        """The refresh ``loop`` failed (it retries): Redis unreachable is logged as an outage, anything else with
        its traceback when the outage starts."""
        if isinstance(error, Unavailable):
            self._refresh_log.failed(f"{error.message}; retrying", by=loop)
        else:
            self._refresh_log.failed(f"{type(error).__name__}: {error}; retrying", exc_info=error, by=loop)

    def end_drain(self) -> None:
        """Stop waiting for open subscriptions (a second SIGTERM): `stop` goes on to end them now."""
        self._drain_cut.set()

    async def _drain(self) -> None:
        """Refuse new calls and streams; keep serving open ones up to ``drain_timeout`` or until they end."""
        assert self._service is not None
        assert self._grpc is not None
        service = self._service
        service.start_draining()
        # grpc.aio refuses new calls from now on; the open ones get the drain plus the usual grace.
        self._grpc_stopping = asyncio.create_task(
            self._grpc.stop(self.settings.drain_timeout + self.settings.shutdown_grace)
        )
        open_subscriptions = service.subscription_total()
        if not open_subscriptions:
            return
        logger.info(
            "draining: %d subscriptions open; serving them for up to %g s",
            open_subscriptions,
            self.settings.drain_timeout,
        )
        ended = asyncio.create_task(service.wait_subscriptions_ended())
        cut = asyncio.create_task(self._drain_cut.wait())
        try:
            await asyncio.wait((ended, cut), timeout=self.settings.drain_timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (ended, cut):
                task.cancel()
            await asyncio.gather(ended, cut, return_exceptions=True)
        remaining = service.subscription_total()
        if remaining:
            logger.info("drain over: ending %d subscriptions with UNAVAILABLE", remaining)
        else:
            logger.info("drained: every subscription ended by its client")

    async def stop(self) -> None:
        """End HTTP streams and requests, end subscriptions with UNAVAILABLE, drain calls, close the store.

        With ``drain_timeout``, new calls are refused first and open streams go on until they end or the drain
        timeout passes.
        """
        # Each part stops even when one before it failed (logged): the store closes and the lock is released.
        if self._dispatcher is not None:
            # Webhooks are the server's own subscribers: they stop first, so a drain waits for clients only.
            await _logged_failure(self._dispatcher.close(), "stopping webhooks")
        draining_possible = self._service is not None and self._grpc is not None and self._grpc_stopping is None
        if self.settings.drain_timeout > 0 and draining_possible:
            await _logged_failure(self._drain(), "draining (shutting down now)")
        if self._http is not None:
            await _logged_failure(self._http.stop(), "stopping HTTP")
        if self._service is not None:
            await _logged_failure(self._service.close(), "ending subscriptions")
        if self._grpc_stopping is not None:
            await _logged_failure(self._grpc_stopping, "stopping gRPC")
        elif self._grpc is not None:
            await _logged_failure(self._grpc.stop(self.settings.shutdown_grace), "stopping gRPC")
        if self._test_admin is not None:
            await _logged_failure(self._test_admin.close(), "stopping the test-admin API")
        for task in (self._housekeeping, self._key_watch, self._memory, self._webhook_watch):
            if task is not None:
                task.cancel()
                # A task that died was already logged by its done callback; stopping goes on regardless.
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        try:
            if self._redis_engine is not None:
                await self._redis_engine.close()
        finally:
            try:
                if self._store is not None:
                    await self._store.close()
            finally:
                if self._data_dir_lock is not None:
                    self._data_dir_lock.release()
        self._stopped.set()

    async def wait_stopped(self) -> None:
        """Return once `stop` has finished."""
        await self._stopped.wait()

    async def __aenter__(self) -> Server:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


async def serve(settings: Settings) -> None:
    """Run a server until SIGINT or SIGTERM, then shut it down gracefully."""
    before, after = raise_open_files_limit()
    if after != before:
        logger.info("raised the open-files limit (RLIMIT_NOFILE) from %d to %d, the hard limit", before, after)
    loop = asyncio.get_running_loop()
    stop_requested = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop_requested.set)
    try:
        async with Server(settings) as server:
            freeze_startup_heap()
            await stop_requested.wait()
            logger.info("tidings shutting down")
            for signum in (signal.SIGINT, signal.SIGTERM):  # a second signal cuts a drain short
                loop.add_signal_handler(signum, server.end_drain)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    logger.info("tidings stopped")


def freeze_startup_heap() -> None:
    """Put what is alive once the server has started (modules, protobuf descriptors, the server's own objects:
    hundreds of thousands) beyond the garbage collector's full collections.

    Retained messages and subscriptions survive long enough to trigger a full collection every second or so
    under load; each scanned the whole start-up heap for 30-50 ms on the event loop (the p99 publish-to-deliver
    latency of docs/performance.md). Frozen, those collections scan only what came after start-up. Only a
    process that tidings owns does this (``tidings server`` and its workers), never an embedding application.
    """
    gc.collect()
    gc.freeze()
    logger.debug("garbage collector: %d start-up objects frozen", gc.get_freeze_count())


def run(settings: Settings) -> None:
    """Run `serve` on uvloop (the blocking entry point of ``tidings server``); with ``workers`` > 1, start and
    supervise that many server processes instead."""
    if settings.workers > 1:
        from tidings.server._workers import supervise

        supervise(settings)
        return
    import uvloop

    uvloop.run(serve(settings))
