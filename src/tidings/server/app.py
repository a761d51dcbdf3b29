"""The composition root: builds store, engine, core and transports, runs them on one loop, stops them in order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import ssl
import time
from collections.abc import Coroutine
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc
import grpc.aio

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
from tidings.server.core import CacheAlreadyExists, TopicsError, TopicsService
from tidings.server.engine.memory import MemoryEngine
from tidings.server.grpc.server import build_grpc_server
from tidings.server.http import HttpServer
from tidings.server.store import DataDirectoryError, DataDirectoryLock
from tidings.server.store.sqlite import SqliteStore

logger = logging.getLogger("tidings.server")


_WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", "[::]", ""})


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
        self._data_dir_lock: DataDirectoryLock | None = None
        self._grpc: grpc.aio.Server | None = None
        self._http: HttpServer | None = None
        self._housekeeping: asyncio.Task[None] | None = None
        self._key_watch: asyncio.Task[None] | None = None
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
            self._data_dir_lock = DataDirectoryLock(settings.data_dir)
            self._data_dir_lock.acquire()
            self._store = await SqliteStore.open(settings.data_dir)
            try:
                self._authenticator = await self._open_authenticator(self._store)
            except OSError as error:  # the signing secret or admin key file
                raise DataDirectoryError.caused_by(settings.data_dir, error) from None
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
            self._grpc = build_grpc_server(service, self._authenticator, lambda: self.public_endpoint)
            address = _host_port(settings.host, settings.port)
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
            if settings.http_port:
                self._http = HttpServer(
                    service,
                    self._authenticator.authenticate,
                    settings.host,
                    settings.http_port,
                    long_poll_timeout=settings.http_long_poll_timeout,
                    shutdown_grace=settings.shutdown_grace,
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
            "tidings listening on %s://%s (data dir %s, %d caches, %s)",
            "grpcs" if settings.tls_cert else "grpc",
            self.endpoint,
            settings.data_dir,
            len(service.list_caches()),
            "anonymous callers allowed" if settings.anonymous_allowed else "every call needs a token",
        )
        if settings.public_endpoint is None and settings.host in _WILDCARD_HOSTS:
            logger.warning(
                "listening on %s: minted tokens will name %s as their endpoint; set --public-endpoint to the "
                "address clients use",
                settings.host,
                self.endpoint,
            )

    @property
    def public_endpoint(self) -> str:
        """host:port that minted tokens tell clients to use (``--public-endpoint``, else the listener)."""
        return self.settings.public_endpoint or self.endpoint

    async def _open_authenticator(self, store: SqliteStore) -> Authenticator:
        data_dir = self.settings.data_dir
        try:
            signer = TokenSigner(load_or_create_secret(data_dir))
        except ValueError as error:
            if os.environ.get(SECRET_ENV):
                raise
            raise DataDirectoryError(data_dir, str(error)) from None  # secret.key holds no usable secret
        admin_key_path = await load_or_create_admin_key(data_dir, store)
        if admin_key_path is not None:
            logger.info("admin key (super-user) is in %s", admin_key_path)
        else:
            logger.info("admin key (super-user) is %s; no other admin key is valid", ADMIN_KEY_ENV)
        authenticator = Authenticator(
            signer,
            AuthPolicy(allow_anonymous=self.settings.anonymous_allowed),
            admin_key=os.environ.get(ADMIN_KEY_ENV) or None,
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
            except Exception:
                logger.exception("could not refresh API keys; will retry")
                continue
            for key_id in revoked.key_ids:
                ended = self._service.revoke_key(key_id)
                logger.info("API key %s revoked (with the tokens it minted); ended %d subscriptions", key_id, ended)
            for token_id, minted_until in revoked.token_ids.items():
                ended = self._service.revoke_token(token_id, minted_until)
                logger.info("token id %r revoked; ended %d subscriptions", token_id, ended)

    async def stop(self) -> None:
        """End HTTP streams and requests, end subscriptions with UNAVAILABLE, drain calls, close the store."""
        if self._http is not None:
            await self._http.stop()
        if self._service is not None:
            await self._service.close()
        if self._grpc is not None:
            await self._grpc.stop(self.settings.shutdown_grace)
        for task in (self._housekeeping, self._key_watch):
            if task is not None:
                task.cancel()
                # A task that died was already logged by its done callback; stopping goes on regardless.
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
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
