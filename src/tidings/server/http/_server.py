"""uvicorn, embedded: serves the Starlette app on the caller's running loop, next to grpc.aio.

The composition root owns signals, so this server installs none; it binds its own socket, so that a busy
port is an ``OSError`` for the caller rather than uvicorn's ``sys.exit``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path

import uvicorn
from starlette.types import ASGIApp

from tidings.server.core import TopicsService
from tidings.server.grpc._routes import GrpcMethods
from tidings.server.http._app import build_app
from tidings.server.http._auth import Authenticate
from tidings.server.http._connections import ConnectionLimits, guarded_protocol
from tidings.server.http._grpc_web_calls import GrpcWebEndpoint
from tidings.server.http._live import LiveRequests
from tidings.server.http._metrics import WebhookStatuses
from tidings.server.http._origin import guard_origins
from tidings.server.process import show_uvicorn_as_transport
from tidings.server.webhooks import WebhookRegistry


class _Uvicorn(uvicorn.Server):
    """A uvicorn server that leaves signal handling to its owner, says when it has started, and calls
    ``before_shutdown`` once it stopped accepting connections (so a reconnecting client is refused, not
    answered 503, while long-lived requests end)."""

    def __init__(self, config: uvicorn.Config, before_shutdown: Callable[[], None]) -> None:
        super().__init__(config)
        self.started_event = asyncio.Event()
        self._before_shutdown = before_shutdown

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the composition root handles SIGINT and SIGTERM

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.started_event.set()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()  # uvicorn closes them again; closing twice is harmless
        self._before_shutdown()
        await super().shutdown(sockets)


def bind(host: str, port: int, backlog: int = 2048, *, reuse_port: bool = False) -> socket.socket:
    """A listening TCP socket on ``host:port`` (the first address ``host`` resolves to); ``reuse_port`` lets
    the workers of one server share it (SO_REUSEPORT: the kernel spreads connections over them)."""
    family, kind, protocol, _, address = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, protocol)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _tls_context(certificate_chain: Path, private_key: Path) -> ssl.SSLContext:
    """The server side of HTTPS: HTTP/1.1 only, as the protocol speaks."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate_chain, private_key)
    context.set_alpn_protocols(["http/1.1"])
    return context


class HttpServer:
    """The HTTP API, browser stream, console and metrics of one topics service.

    ``tls`` is (certificate chain, private key) to serve HTTPS. Only requests for ``allowed_hosts`` (None: any)
    are answered, and browsers' state-changing requests only from this server's origin or ``cors_origins``
    (`guard_origins`). ``grpc_methods`` (the gRPC port's) are served to browsers as gRPC-web. ``connections``
    bounds open connections and how long they may idle or take to send a request. `start` binds and serves;
    `stop` ends long-lived requests (SSE streams, gRPC-web streams, long polls) at once, lets other requests
    finish within ``shutdown_grace`` seconds, then closes the connections.
    """

    def __init__(
        self,
        service: TopicsService,
        authenticate: Authenticate,
        host: str,
        port: int,
        *,
        long_poll_timeout: float,
        shutdown_grace: float,
        connections: ConnectionLimits,
        allowed_hosts: tuple[str, ...] | None = None,
        cors_origins: tuple[str, ...] = (),
        tls: tuple[Path, Path] | None = None,
        reuse_port: bool = False,
        webhooks: WebhookRegistry | None = None,
        webhook_statuses: WebhookStatuses | None = None,
        grpc_methods: GrpcMethods | None = None,
    ) -> None:
        self._live = LiveRequests()
        self._reuse_port = reuse_port
        self.connections = connections
        self._tls = tls
        self.app = build_app(
            service,
            authenticate,
            self._live,
            long_poll_timeout=long_poll_timeout,
            webhooks=webhooks,
            webhook_statuses=webhook_statuses,
        )
        app: ASGIApp = self.app
        if grpc_methods is not None:
            app = GrpcWebEndpoint(grpc_methods, self._live, app)
        self._asgi = guard_origins(app, allowed_hosts, cors_origins)
        self._host = host
        self._port = port
        self._shutdown_grace = shutdown_grace
        self._uvicorn: _Uvicorn | None = None
        self._serving: asyncio.Task[None] | None = None
        self.port = 0

    @property
    def scheme(self) -> str:
        """``https`` with TLS, else ``http``."""
        return "http" if self._tls is None else "https"

    async def start(self) -> None:
        """Bind the port and start serving; ``OSError`` if the port cannot be bound."""
        if self._serving is not None:
            raise RuntimeError("HTTP server already started")
        try:
            sock = bind(self._host, self._port, reuse_port=self._reuse_port)
        except OSError as error:
            raise OSError(f"cannot listen on http://{self._host}:{self._port}: {error.strerror or error}") from None
        self.port = sock.getsockname()[1]
        show_uvicorn_as_transport()
        config = uvicorn.Config(
            self._asgi,
            lifespan="off",
            http=guarded_protocol(self.connections, None if self._tls is None else _tls_context(*self._tls)),
            timeout_keep_alive=self.connections.idle_timeout,
            log_config=None,
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=max(1, math.ceil(self._shutdown_grace)),
        )
        server = self._uvicorn = _Uvicorn(config, self._live.close)
        serving = self._serving = asyncio.create_task(server.serve(sockets=[sock]), name="tidings-http")
        started = asyncio.create_task(server.started_event.wait())
        try:
            await asyncio.wait((serving, started), return_when=asyncio.FIRST_COMPLETED)
        finally:
            started.cancel()
        if serving.done():
            self._serving = None
            serving.result()  # raises why it stopped
            raise OSError("HTTP server stopped while starting")

    async def stop(self) -> None:
        """Stop accepting, end live requests, wait for the rest; idempotent."""
        if self._uvicorn is not None and self._serving is not None:
            self._uvicorn.should_exit = True
            await self._serving
            self._serving = None
        self._live.close()
