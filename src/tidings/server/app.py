"""The composition root: builds store, engine, core and transports, runs them on one loop, stops them in order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import ssl
from collections.abc import Coroutine
from pathlib import Path
from types import TracebackType
from typing import Any

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
    Authenticator,
    AuthPolicy,
    TokenSigner,
    load_or_create_admin_key,
    load_or_create_secret,
)
from tidings.server.config import Settings
from tidings.server.core import CacheAlreadyExists, TopicsError, TopicsService
from tidings.server.engine.memory import MemoryEngine
from tidings.server.grpc.server import build_grpc_server
from tidings.server.http import ConnectionLimits, HttpServer
from tidings.server.store.sqlite import SqliteStore

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


def _refuse_busy_port(host: str, port: int) -> None:
    """`OSError` naming the address if ``host:port`` cannot be bound (checked before grpcio tries, which would
    print a line of its own first and a less clear error)."""
    if port == 0:
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
        self._store: SqliteStore | None = None
        self._grpc: grpc.aio.Server | None = None
        self._http: HttpServer | None = None
        self._housekeeping: asyncio.Task[None] | None = None
        self._key_watch: asyncio.Task[None] | None = None
        self._memory: asyncio.Task[None] | None = None
        self._authenticator: Authenticator | None = None
        self._port = 0
        self._stopped = asyncio.Event()

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
            self._store = await SqliteStore.open(settings.data_dir)
            self._authenticator = await self._open_authenticator(self._store)
            engine = MemoryEngine(settings.limits.retention_messages, settings.limits.retention_bytes)
            service = self._service = TopicsService(
                engine, self._store, settings.limits, heartbeat_interval=settings.heartbeat_interval
            )
            await service.start()
            for cache_name in settings.create_caches:
                try:
                    await service.create_cache(cache_name)
                except CacheAlreadyExists:
                    pass
                except TopicsError as error:
                    raise ValueError(f"--create-cache {cache_name!r}: {error.message}") from None
            max_connections = self._max_connections()
            self._grpc = build_grpc_server(
                service,
                self._authenticator,
                lambda: self.public_endpoint,
                max_connections=max_connections,
                handshake_timeout=settings.request_timeout,
            )
            address = _host_port(settings.host, settings.port)
            _refuse_busy_port(settings.host, settings.port)
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
            self._housekeeping = _background(service.run_housekeeping(), "tidings-housekeeping")
            self._key_watch = _background(self._watch_keys(), "tidings-key-watch")
            self._memory = _background(return_freed_memory(_TRIM_INTERVAL), "tidings-memory")
            if settings.http_port:
                self._http = HttpServer(
                    service,
                    self._authenticator.authenticate,
                    settings.host,
                    settings.http_port,
                    long_poll_timeout=settings.http_long_poll_timeout,
                    shutdown_grace=settings.shutdown_grace,
                    connections=ConnectionLimits(
                        max_connections, settings.http_idle_timeout, settings.request_timeout, grpc_port=self._port
                    ),
                    allowed_hosts=settings.http_allowed_hosts,
                    cors_origins=settings.cors_origins,
                    tls=(settings.tls_cert, settings.tls_key) if settings.tls_cert and settings.tls_key else None,
                )
                await self._http.start()
        except BaseException:
            await self.stop()
            raise
        if self._http is not None:
            logger.info(
                "tidings listening on %s://%s (HTTP API, browser stream, console, /metrics)",
                self._http.scheme,
                _host_port(settings.host, self._http.port),
            )
        logger.info(
            "tidings listening on %s://%s (data dir %s, %s, %s)",
            "grpcs" if settings.tls_cert else "grpc",
            self.endpoint,
            settings.data_dir,
            _count(len(service.list_caches()), "cache"),
            "anonymous callers allowed" if settings.anonymous_allowed else "every call needs a token",
        )
        if settings.public_endpoint is None and settings.host in _WILDCARD_HOSTS:
            logger.warning(
                "listening on %s: minted tokens will name %s as their endpoint; set --public-endpoint to the "
                "address clients use",
                settings.host,
                self.endpoint,
            )

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

    async def _open_authenticator(self, store: SqliteStore) -> Authenticator:
        data_dir = self.settings.data_dir
        signer = TokenSigner(load_or_create_secret(data_dir))
        admin_key_path = await load_or_create_admin_key(data_dir, store)
        if admin_key_path is not None:
            logger.info("admin key (super-user) is in %s", admin_key_path)
        authenticator = Authenticator(
            signer,
            AuthPolicy(allow_anonymous=self.settings.anonymous_allowed),
            admin_key=os.environ.get(ADMIN_KEY_ENV) or None,
        )
        await authenticator.refresh(store)
        return authenticator

    async def _watch_keys(self) -> None:
        """Pick up API keys created or revoked by other processes (the CLI) within the refresh interval."""
        assert self._store is not None
        assert self._authenticator is not None
        assert self._service is not None
        while True:
            await asyncio.sleep(self.settings.key_refresh_interval)
            try:
                for key_id in await self._authenticator.refresh(self._store):
                    ended = self._service.revoke_key(key_id)
                    logger.info("API key %s revoked; ended %d subscriptions", key_id, ended)
            except Exception:
                logger.exception("could not refresh API keys; will retry")

    async def stop(self) -> None:
        """End HTTP streams and requests, end subscriptions with UNAVAILABLE, drain calls, close the store."""
        if self._http is not None:
            await self._http.stop()
        if self._service is not None:
            await self._service.close()
        if self._grpc is not None:
            await self._grpc.stop(self.settings.shutdown_grace)
        for task in (self._housekeeping, self._key_watch, self._memory):
            if task is not None:
                task.cancel()
                # A task that died was already logged by its done callback; stopping goes on regardless.
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self._store is not None:
            await self._store.close()
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
        async with Server(settings):
            await stop_requested.wait()
            logger.info("tidings shutting down")
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    logger.info("tidings stopped")


def run(settings: Settings) -> None:
    """Run `serve` on uvloop (the blocking entry point of ``tidings server``)."""
    import uvloop

    uvloop.run(serve(settings))
