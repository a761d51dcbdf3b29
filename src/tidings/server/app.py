"""The composition root: opens the backend the settings name, composes it with the core, the webhooks and the
transports, runs them on one loop, and stops them in order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any

from tidings.server.auth import Authenticator
from tidings.server.backend import Backend, RefreshLog, open_authenticator, open_backend, watch_keys
from tidings.server.config import Settings
from tidings.server.core import CacheAlreadyExists, TopicsError, TopicsService
from tidings.server.grpc.server import GrpcTransport, build_transport, grpc_methods
from tidings.server.http import ConnectionLimits, HttpServer
from tidings.server.process import (
    connections_per_transport,
    freeze_startup_heap,
    host_port,
    raise_open_files_limit,
    return_freed_memory,
)
from tidings.server.testadmin import UPSTREAM_HOST, TestAdmin
from tidings.server.webhooks import RetryPolicy, WebhookDispatcher, WebhookRegistry, WebhookSender

logger = logging.getLogger("tidings.server")


_WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", "[::]", ""})
# Seconds between checks whether freed memory should go back to the system (`return_freed_memory`).
_TRIM_INTERVAL = 5.0


async def _logged_failure(stop: Callable[[], Awaitable[object]], what: str) -> None:
    """Run one step of stopping; a failure is logged and stopping goes on."""
    try:
        await stop()
    except Exception:
        logger.exception("%s failed", what)


class _BackgroundTasks:
    """The server's own tasks: an unexpected death is logged at once; `stop` cancels them and waits."""

    def __init__(self) -> None:
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coroutine, name=name)

        def report(done: asyncio.Task[None]) -> None:
            if not done.cancelled() and done.exception() is not None:
                logger.error("background task %s died", name, exc_info=done.exception())

        task.add_done_callback(report)
        self._tasks.append(task)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            # A task that died was already logged by its done callback; stopping goes on regardless.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


class Server:
    """A tidings server running on the current event loop.

    ``async with Server(settings) as server:`` starts it (``server.port`` is the bound gRPC port, also
    when ``settings.port`` is 0) and stops it gracefully on exit.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # Every part that was made, to stop in order (`_compose` says which).
        self._parts = contextlib.AsyncExitStack()
        self._started = False
        self._backend: Backend | None = None
        self._service: TopicsService | None = None
        self._webhooks: WebhookRegistry | None = None
        self._grpc: GrpcTransport | None = None
        self._serving = False  # the gRPC transport was asked to start: a drain can stop it
        self._http: HttpServer | None = None
        self._refresh_log = RefreshLog()
        self._port = 0
        self._stopped = asyncio.Event()
        self._drain_cut = asyncio.Event()

    @property
    def port(self) -> int:
        """The bound gRPC port."""
        if self._grpc is None:
            raise RuntimeError("server is not started")
        return self._port

    @property
    def endpoint(self) -> str:
        """``host:port`` of the gRPC listener."""
        return host_port(self.settings.host, self.port)

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

    @property
    def engine_name(self) -> str:
        """What holds the topics: ``memory`` or ``redis at host:port``."""
        if self._backend is None:
            raise RuntimeError("server is not started")
        return self._backend.name

    @property
    def public_endpoint(self) -> str:
        """host:port that minted tokens tell clients to use (``--public-endpoint``, else the listener)."""
        return self.settings.public_endpoint or self.endpoint

    async def start(self) -> None:
        """Open the backend, load state, bind and start listening."""
        if self._started:
            raise RuntimeError("server already started")
        self._started = True
        try:
            await self._compose()
        except BaseException:
            await self.stop()
            raise
        self._log_started()

    async def _compose(self) -> None:
        """Open the backend, make every other part, register how each stops (`_register_stops`), then start them
        in the order they need each other."""
        settings = self.settings
        backend = self._backend = await self._parts.enter_async_context(open_backend(settings))
        authenticator = await open_authenticator(backend, settings)
        service = self._service = TopicsService(
            backend.engine,
            backend.store,
            settings.limits,
            heartbeat_interval=settings.heartbeat_interval,
            subscribe_latest=settings.subscribe_latest,
            cache_refresh_interval=settings.key_refresh_interval,
        )
        webhooks = self._webhooks = WebhookRegistry(service, backend.store)
        dispatcher = WebhookDispatcher(
            service,
            WebhookSender(timeout=settings.webhook_timeout, allow_private=settings.webhooks_reach_private),
            RetryPolicy(max_attempts=settings.webhook_max_attempts),
            leases=backend.leases,
        )
        max_connections = connections_per_transport(settings.max_connections)
        grpc = self._grpc = build_transport(
            settings, service, authenticator, lambda: self.public_endpoint, webhooks, max_connections
        )
        http = self._http = self._http_server(service, authenticator, webhooks, dispatcher, max_connections)
        test_admin = None if settings.test_admin_port is None else TestAdmin(settings.test_admin_port)
        tasks = _BackgroundTasks()
        self._register_stops(tasks, test_admin, grpc, service, http, dispatcher)

        await service.start()
        await webhooks.start()
        dispatcher.start()
        await webhooks.add_listener(dispatcher)
        await self._create_caches(service)
        await self._listen(grpc, test_admin)
        tasks.start(service.run_housekeeping(), "tidings-housekeeping")
        interval = settings.key_refresh_interval
        tasks.start(watch_keys(backend, authenticator, service, interval, self._refresh_log), "tidings-key-watch")
        tasks.start(return_freed_memory(_TRIM_INTERVAL), "tidings-memory")
        tasks.start(backend.watch_webhooks(webhooks, interval, self._refresh_log), "tidings-webhook-watch")
        if http is not None:
            http.connections.grpc_port = self._port
            await http.start()
            grpc.tell_http_port(http.port)

    def _register_stops(
        self,
        tasks: _BackgroundTasks,
        test_admin: TestAdmin | None,
        grpc: GrpcTransport,
        service: TopicsService,
        http: HttpServer | None,
        dispatcher: WebhookDispatcher,
    ) -> None:
        """The parts stop in the reverse of this order (after a failed start too): webhook deliveries first (the
        server's own subscribers, so that a drain waits for clients only), then the drain, HTTP, the
        subscriptions, gRPC, the test-admin API, the background tasks and last the backend (engine, store, data
        directory), which `_compose` entered first. Each stops even when one before it failed (logged)."""
        parts, settings = self._parts, self.settings
        parts.push_async_callback(tasks.stop)
        if test_admin is not None:
            parts.push_async_callback(_logged_failure, test_admin.close, "stopping the test-admin API")
        parts.push_async_callback(_logged_failure, lambda: grpc.stop(settings.shutdown_grace), "stopping gRPC")
        parts.push_async_callback(_logged_failure, service.close, "ending subscriptions")
        if http is not None:
            parts.push_async_callback(_logged_failure, http.stop, "stopping HTTP")
        if settings.drain_timeout > 0:
            parts.push_async_callback(_logged_failure, self._drain, "draining (shutting down now)")
        parts.push_async_callback(_logged_failure, dispatcher.close, "stopping webhooks")

    async def _listen(self, grpc: GrpcTransport, test_admin: TestAdmin | None) -> None:
        """Start the gRPC transport on the configured address or, with ``--test-admin-port``, on a loopback port
        of its own behind the relay that the test-admin API blocks."""
        settings = self.settings
        self._serving = True
        if test_admin is None:
            self._port = await grpc.start(settings.host, settings.port)
        else:
            self._port = await test_admin.start(settings.host, settings.port, await grpc.start(UPSTREAM_HOST, 0))

    async def _create_caches(self, service: TopicsService) -> None:
        """``--create-cache``: each named cache exists."""
        for cache_name in self.settings.create_caches:
            try:
                await service.create_cache(cache_name)
            except CacheAlreadyExists:
                pass
            except TopicsError as error:
                raise ValueError(f"--create-cache {cache_name!r}: {error.message}") from None

    def _http_server(
        self,
        service: TopicsService,
        authenticator: Authenticator,
        webhooks: WebhookRegistry,
        dispatcher: WebhookDispatcher,
        max_connections: int,
    ) -> HttpServer | None:
        """The HTTP API (not bound yet), unless ``http_port`` is 0."""
        settings = self.settings
        if not settings.http_port:
            return None
        return HttpServer(
            service,
            authenticator.authenticate,
            settings.host,
            settings.http_port,
            long_poll_timeout=settings.http_long_poll_timeout,
            shutdown_grace=settings.shutdown_grace,
            connections=ConnectionLimits(
                max_connections,
                settings.http_idle_timeout,
                settings.request_timeout,
                max_per_address=settings.connections_per_address(max_connections),
            ),
            allowed_hosts=settings.http_allowed_hosts,
            cors_origins=settings.cors_origins,
            tls=(settings.tls_cert, settings.tls_key) if settings.tls_cert and settings.tls_key else None,
            reuse_port=settings.workers > 1,
            webhooks=webhooks,
            webhook_statuses=dispatcher.statuses,
            grpc_methods=grpc_methods(
                service, authenticator, lambda: self.public_endpoint, webhooks, fault_injection=settings.fault_injection
            ),
        )

    def _log_started(self) -> None:
        settings = self.settings
        assert self._grpc is not None
        logger.info("%s", self._grpc.description)
        if settings.fault_injection:
            logger.warning(
                "FAULT INJECTION IS ON (--fault-injection): any caller can make calls fail, wait or end their "
                "streams with Momento Local's request metadata; never run this way in production"
            )
        if self._http is not None:
            logger.info(
                "tidings listening on %s://%s (HTTP API, browser stream, console, /metrics)",
                self._http.scheme,
                host_port(settings.host, self._http.port),
            )
        logger.info(
            "tidings listening on %s://%s (%s engine, data dir %s, %s, %s)",
            "grpcs" if settings.tls_cert else "grpc",
            self.endpoint,
            self.engine_name,
            settings.data_dir,
            f"{caches} cache" if (caches := self.service.cache_count()) == 1 else f"{caches} caches",
            "anonymous callers allowed" if settings.anonymous_allowed else "every call needs a token",
        )
        if settings.public_endpoint is None and settings.host in _WILDCARD_HOSTS:
            logger.warning(
                "listening on %s: minted tokens will name %s as their endpoint; set --public-endpoint to the "
                "address clients use",
                settings.host,
                self.endpoint,
            )

    def end_drain(self) -> None:
        """Stop waiting for open subscriptions (a second SIGTERM): `stop` goes on to end them now."""
        self._drain_cut.set()

    async def _drain(self) -> None:
        """Refuse new calls and streams; keep serving open ones up to ``drain_timeout`` or until they end."""
        if not self._serving:
            return
        assert self._service is not None
        assert self._grpc is not None
        service = self._service
        service.start_draining()
        # The transport refuses new calls from now on; the open ones get the drain plus the usual grace.
        self._grpc.begin_stop(self.settings.drain_timeout + self.settings.shutdown_grace)
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
        """End HTTP streams and requests, end subscriptions with UNAVAILABLE, drain calls, close the backend.

        With ``drain_timeout``, new calls are refused first and open streams go on until they end or the drain
        timeout passes. Every part made stops, in the order `_compose` gives, also after a failed start.
        """
        await self._parts.aclose()
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


def run(settings: Settings) -> None:
    """Run `serve` on uvloop (the blocking entry point of ``tidings server``); with ``workers`` > 1, start and
    supervise that many server processes instead."""
    if settings.workers > 1:
        from tidings.server.process import supervise

        supervise(settings, serve)
        return
    import uvloop

    uvloop.run(serve(settings))
