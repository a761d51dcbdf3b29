"""`H2Server`: listens, hands each connection an `H2Connection`, reaps dead, slow and idle ones, shuts down
with GOAWAY."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from pathlib import Path
from typing import Final

import grpc
import hyperframe.frame

from tidings.server.connections import ConnectionsPerAddress
from tidings.server.grpc._h2._connection import ConnectionOptions, CredentialCheck, H2Connection
from tidings.server.grpc._routes import MethodHandlers, routes

logger = logging.getLogger("tidings.server.grpc.h2")

# As grpc.aio is configured (server.server_options): ping a connection silent for 30 s, drop it 10 s later.
KEEPALIVE_TIME: Final = 30.0
KEEPALIVE_TIMEOUT: Final = 10.0
# A connection that has not sent the HTTP/2 preface and its first SETTINGS by then is dropped, and so is a
# request that has not arrived whole that long after its HEADERS (--request-timeout).
HANDSHAKE_TIMEOUT: Final = 10.0
# A connection on which no call has run for this long is told to go away (GOAWAY), and closed soon after
# (--grpc-idle-timeout); PINGs do not count. gRPC clients open a new connection for their next call.
IDLE_TIMEOUT: Final = 300.0
_GOAWAY_GRACE: Final = 2.0
_REAP_INTERVAL: Final = 1.0
# Streams one connection may have open at once (advertised in SETTINGS; --max-streams-per-connection).
MAX_CONCURRENT_STREAMS: Final = 10_000


def _short_frame_repr(frame: hyperframe.frame.Frame) -> str:
    return f"{type(frame).__name__}(stream_id={frame.stream_id})"


def shorten_frame_reprs() -> None:
    """Make ``repr`` of an HTTP/2 frame its type and stream only, in this process.

    ``h2`` formats ``repr(frame)`` of every frame it receives, for a trace log, before any logger can decline
    it (``H2Connection._receive_frame``, h2 4.x): the flags as a sorted set, the payload in hex. Measured on
    the publish benchmark, that was 9-18% of the server's CPU per unary call. Nothing in tidings logs frames.
    """
    hyperframe.frame.Frame.__repr__ = _short_frame_repr  # type: ignore[method-assign]


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server TLS context for ``cert``/``key`` that negotiates ``h2`` by ALPN."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    context.set_alpn_protocols(["h2"])
    return context


class H2Server:
    """A gRPC server on asyncio and ``h2`` serving the given method handlers (grpc ``RpcMethodHandler`` tables
    by service name, as the servicers build them)."""

    def __init__(
        self,
        method_handlers: MethodHandlers,
        *,
        max_message_length: int,
        fault_injection: bool = False,
        reuse_port: bool = False,
        ssl_context: ssl.SSLContext | None = None,
        keepalive_time: float = KEEPALIVE_TIME,
        keepalive_timeout: float = KEEPALIVE_TIMEOUT,
        max_connections: int = 1 << 30,
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
        max_concurrent_streams: int = MAX_CONCURRENT_STREAMS,
        max_connections_per_address: int | None = None,
        idle_timeout: float = IDLE_TIMEOUT,
        credential_check: CredentialCheck | None = None,
    ) -> None:
        shorten_frame_reprs()
        self._options = ConnectionOptions(
            routes(method_handlers, fault_injection),
            max_message_length,
            max_concurrent_streams,
            set(),
            set(),
            max_connections=max_connections,
            per_address=ConnectionsPerAddress(max_connections_per_address or max_connections),
            credential_check=credential_check,
        )
        self._handshake_timeout = handshake_timeout
        self._idle_timeout = idle_timeout
        self._reuse_port = reuse_port
        self._ssl_context = ssl_context
        self._keepalive_time = keepalive_time
        self._keepalive_timeout = keepalive_timeout
        self._listener: asyncio.Server | None = None
        self._reaper: asyncio.Task[None] | None = None
        self._stopped = False

    @property
    def http_port(self) -> int:
        """The HTTP API's port, named in the answer to an HTTP/1.1 request on this one (0: not served)."""
        return self._options.http_port

    @http_port.setter
    def http_port(self, port: int) -> None:
        self._options.http_port = port

    @property
    def connection_count(self) -> int:
        """Open client connections."""
        return len(self._options.connections)

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (port 0: a free port) and return the bound port; OSError if it cannot."""
        loop = asyncio.get_running_loop()
        options = self._options
        self._listener = await loop.create_server(
            lambda: H2Connection(options),
            host.strip("[]") or None,
            port,
            reuse_port=self._reuse_port or None,
            ssl=self._ssl_context,
            ssl_handshake_timeout=self._handshake_timeout if self._ssl_context is not None else None,
            backlog=4096,
        )
        self._reaper = loop.create_task(self._reap(), name="tidings-h2-reaper")
        sockets = self._listener.sockets
        return int(sockets[0].getsockname()[1])

    async def _reap(self) -> None:
        """Every second: enforce each connection's deadlines (`_check`)."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(_REAP_INTERVAL)
            now = loop.time()
            for connection in list(self._options.connections):
                self._check(connection, now)

    def _check(self, connection: H2Connection, now: float) -> None:
        """Close a connection without its preface and SETTINGS within the handshake timeout, end requests not
        whole within it, tell an idle connection to go away, ping a silent one and close it if it does not
        answer."""
        notices = self._options.notices
        if connection.close_at is not None:
            if now >= connection.close_at:
                connection.close()
            return
        if not connection.preface_received:
            if now - connection.connected_at >= self._handshake_timeout:
                notices.seen(
                    "closed a gRPC connection from %s: no HTTP/2 preface and SETTINGS within %g s (--request-timeout)",
                    connection.address,
                    self._handshake_timeout,
                )
                connection.close()
            return
        if not connection.decoding_backlog:  # else its requests' bytes are here, waiting for the server's turn
            connection.expire_requests(now - self._handshake_timeout)
        idle_since = connection.idle_since
        if idle_since is not None and now - idle_since >= self._idle_timeout:
            connection.go_away()  # the client opens a new connection for its next call
            connection.close_at = now + _GOAWAY_GRACE
        elif connection.ping_sent_at is not None:
            if now - connection.ping_sent_at >= self._keepalive_timeout:
                logger.info("closing a connection that did not answer a keepalive ping")
                connection.close()
        elif now - connection.last_received >= self._keepalive_time:
            connection.ping()

    async def stop(self, grace: float | None) -> None:
        """Refuse new calls (GOAWAY), let open ones finish for ``grace`` seconds, end the rest UNAVAILABLE."""
        if self._stopped:
            return
        self._stopped = True
        if self._listener is not None:
            self._listener.close()
        options = self._options
        for connection in list(options.connections):
            connection.go_away()
        if options.tasks and grace:
            await asyncio.wait(list(options.tasks), timeout=grace)
        for connection in list(options.connections):
            connection.end_calls(grpc.StatusCode.UNAVAILABLE, "server shutting down")
        if options.tasks:
            await asyncio.gather(*options.tasks, return_exceptions=True)
        for connection in list(options.connections):
            connection.close()
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
