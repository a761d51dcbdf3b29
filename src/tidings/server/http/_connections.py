"""HTTP/1.1 connections with bounds (README *What the server guards against*): uvicorn's h11 protocol, guarded.

uvicorn alone keeps a connection that never sends a byte, or sends a request head one byte at a time, open
forever, and accepts connections until the process runs out of file descriptors. Here:

- a connection that is idle (new, or between requests) for ``idle_timeout`` seconds is closed;
- a request, head and body, must arrive within ``request_timeout`` seconds of the connection becoming ready
  for it, however slowly its bytes trickle in;
- past ``max_connections`` open connections a new one is answered ``503`` (``Retry-After``) and closed, and so
  is one from an address that holds ``max_per_address`` of them already;
- with TLS, the handshake must end within ``request_timeout`` too, and handshaking connections count against
  ``max_connections`` (a refused one is closed without an answer: there is no TLS session to answer in);
- a connection closed while its request is still arriving (``413`` for an oversized body, a refusal) is closed
  gracefully: the response is sent, the write side shut, and what the client still sends is read and dropped
  (for a few seconds at most) so the kernel does not reset the connection before the client reads the status;
- a gRPC client (its HTTP/2 preface) gets its call answered in gRPC, ``UNIMPLEMENTED`` with a message naming
  the gRPC port (``_grpc_refusal.py``), then that graceful close.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass, field
from typing import Any, Final

from uvicorn.protocols.http.h11_impl import H11Protocol

from tidings.server.connections import ConnectionsPerAddress, WrongPortNotices, peer_address
from tidings.server.http._encoding import encode_error
from tidings.server.http._grpc_refusal import GrpcRefusal

logger = logging.getLogger("tidings.server.http")

# How long, and how much, a closing connection still reads and drops so that its client sees the response.
LINGER_SECONDS: Final = 5.0
LINGER_BYTES: Final = 16 * 1024 * 1024
# At most this many refused connections linger at once (and at most 1/16 of the connection cap, so lingering
# ones cannot eat the descriptors kept for the rest); past it a refusal closes at once.
MAX_LINGERING: Final = 256
# What an HTTP/2 (gRPC) client sends first.
_HTTP2_PREFACE: Final = b"PRI * HTTP/2.0\r\n"
# h11's states of the client's side (by name: h11 is uvicorn's dependency, not ours). The request is in: the
# deadline for receiving it is met.
_RECEIVED: Final = frozenset({"DONE", "MUST_CLOSE", "CLOSED"})
# The request may still be arriving: closing now could reset the connection before the client reads the answer.
_STILL_SENDING: Final = frozenset({"SEND_BODY", "ERROR"})


def _refusal() -> bytes:
    body = encode_error("unavailable", "the server has too many open connections; try again shortly")
    head = (
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nretry-after: 1\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


_REFUSAL: Final = _refusal()


@dataclass
class ConnectionLimits:
    """The bounds of one HTTP listener, and the counts it keeps (shared by all its connections)."""

    max_connections: int
    idle_timeout: int
    request_timeout: float
    grpc_port: int = 0
    refused: int = 0
    lingering: set[asyncio.Transport] = field(default_factory=set)
    wrong_protocol: WrongPortNotices = field(default_factory=lambda: WrongPortNotices(logger))
    handshaking: set[asyncio.Transport] = field(default_factory=set)
    max_per_address: int | None = None  # connections one address may hold (None: max_connections)
    per_address: ConnectionsPerAddress = field(init=False)

    def __post_init__(self) -> None:
        self.per_address = ConnectionsPerAddress(self.max_per_address or self.max_connections)

    def admit(self, transport: asyncio.BaseTransport) -> str | None:
        """Count a new connection by its peer's address: the address, or None (logged) when that address holds
        ``max_per_address`` connections already."""
        address = peer_address(transport)
        per_address = self.per_address
        if per_address.admit(address):
            return address
        if per_address.refused == 1 or per_address.refused % 1000 == 0:
            logger.warning(
                "HTTP: %s holds --max-connections-per-address %d connections; refusing new ones with 503 (%d so far)",
                address,
                per_address.limit,
                per_address.refused,
            )
        return None

    @property
    def max_lingering(self) -> int:
        """Connections that may linger (closing gracefully) at once."""
        return min(MAX_LINGERING, max(4, self.max_connections // 16))


class _GracefulTransport:
    """The transport uvicorn sees: ``close`` lingers while the client may still be sending."""

    def __init__(self, transport: asyncio.Transport, protocol: GuardedH11Protocol) -> None:
        self._transport = transport
        self._protocol = protocol

    def close(self) -> None:
        self._protocol.close_gracefully()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with idle and request deadlines, a connection cap and graceful closes."""

    limits: ConnectionLimits  # set on the subclass `guarded_protocol` makes
    counts_addresses = True  # False under `TlsHandshake`, which counts its connections by address itself

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._raw: asyncio.Transport | None = None
        self._address: str | None = None  # counted in `ConnectionLimits.per_address`, released when closed
        self._request_deadline: asyncio.TimerHandle | None = None
        self._linger: asyncio.TimerHandle | None = None
        self._lingered = 0
        self._grpc_refusal: GrpcRefusal | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._raw = transport
        limits = self.limits
        if len(self.connections) + len(limits.handshaking) >= limits.max_connections:
            limits.refused += 1
            if limits.refused == 1 or limits.refused % 1000 == 0:
                logger.warning(
                    "HTTP: %d open connections reach --max-connections; refusing new ones with 503 (%d so far)",
                    len(self.connections),
                    limits.refused,
                )
            transport.write(_REFUSAL)
            self._start_lingering()
            return
        if self.counts_addresses:
            self._address = limits.admit(transport)
            if self._address is None:
                transport.write(_REFUSAL)
                self._start_lingering()
                return
        super().connection_made(_GracefulTransport(transport, self))  # type: ignore[arg-type]
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)
        self._arm_request_deadline()

    def data_received(self, data: bytes) -> None:
        if self._linger is not None:
            self._lingered += len(data)
            if self._lingered > LINGER_BYTES:
                self._close_now()
            return
        if self._grpc_refusal is not None:
            self._refuse_grpc(data)
            return
        if data.startswith(_HTTP2_PREFACE) and self.cycle is None:
            self._grpc_on_http_port(data)
            return
        super().data_received(data)
        if self._client_state() in _RECEIVED:
            self._cancel_request_deadline()

    def eof_received(self) -> None:
        if self._linger is not None:
            self._close_now()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._raw is not None and not self._raw.is_closing() and self._linger is None:
            if self._client_state() in _RECEIVED:
                self._cancel_request_deadline()  # a pipelined request is already in
            else:
                self._arm_request_deadline()

    def take_address(self, address: str | None) -> None:
        """Take over a connection `TlsHandshake` counted by ``address``: released when this one closes."""
        self._address = address

    def connection_lost(self, exc: Exception | None) -> None:
        if self._address is not None:
            self.limits.per_address.release(self._address)
            self._address = None
        self._cancel_request_deadline()
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        if self._raw is not None:
            self.limits.lingering.discard(self._raw)
        if self.transport is not None:  # not refused: uvicorn's connection
            super().connection_lost(exc)

    def _client_state(self) -> str:
        return self.conn.their_state.__name__

    def _grpc_on_http_port(self, data: bytes) -> None:
        """A gRPC (HTTP/2) client on this HTTP/1.1 port: log where gRPC is, once a minute at most, and answer
        its call with a gRPC error that says so (`GrpcRefusal`), within the request deadline."""
        limits = self.limits
        where = f"port {limits.grpc_port}" if limits.grpc_port else "the gRPC port (--port)"
        client = "%s:%d" % self.client if self.client else "a client"  # noqa: UP031
        limits.wrong_protocol.seen("%s spoke gRPC (HTTP/2) to the HTTP port; gRPC is served on %s", client, where)
        self._grpc_refusal = GrpcRefusal(
            f"this is tidings' HTTP port (HTTP API, browser stream, console); gRPC is served on {where}"
        )
        self._refuse_grpc(data)

    def _refuse_grpc(self, data: bytes) -> None:
        refusal, raw = self._grpc_refusal, self._raw
        assert refusal is not None
        if raw is None or raw.is_closing():
            return
        raw.write(refusal.receive(data))
        if refusal.finished:
            self._start_lingering()  # the client reads the answer, not a connection reset

    def close_gracefully(self) -> None:
        """Close; if the client may still be sending its request, first let it finish (bounded)."""
        raw = self._raw
        if raw is None or raw.is_closing() or self._linger is not None:
            return
        if self._client_state() in _STILL_SENDING:
            self._start_lingering()
        else:
            raw.close()

    def _start_lingering(self) -> None:
        raw = self._raw
        assert raw is not None
        self._cancel_request_deadline()
        if self.timeout_keep_alive_task is not None:
            self.timeout_keep_alive_task.cancel()
            self.timeout_keep_alive_task = None
        lingering = self.limits.lingering
        if len(lingering) >= self.limits.max_lingering:
            raw.close()
            return
        lingering.add(raw)
        self._linger = self.loop.call_later(LINGER_SECONDS, self._close_now)
        raw.resume_reading()
        if raw.can_write_eof():
            raw.write_eof()

    def _close_now(self) -> None:
        if self._raw is not None:
            self.limits.lingering.discard(self._raw)
            self._raw.close()

    def _arm_request_deadline(self) -> None:
        self._cancel_request_deadline()
        self._request_deadline = self.loop.call_later(self.limits.request_timeout, self._request_too_slow)

    def _cancel_request_deadline(self) -> None:
        if self._request_deadline is not None:
            self._request_deadline.cancel()
            self._request_deadline = None

    def _request_too_slow(self) -> None:
        self._request_deadline = None
        if self._raw is not None and not self._raw.is_closing():
            self._raw.close()


class TlsHandshake(asyncio.Protocol):
    """A TLS listener's connection until its handshake is done (within the request timeout); then the HTTP
    protocol takes the TLS transport over.

    asyncio's own TLS server would give every connection 60 s to handshake, uncounted: enough for idle
    connections to exhaust the descriptors again.
    """

    # Set on the subclass `guarded_protocol` makes.
    limits: ConnectionLimits
    http: type[GuardedH11Protocol]
    context: ssl.SSLContext

    def __init__(self, config: Any, server_state: Any, app_state: dict[str, Any], _loop: Any = None) -> None:
        self._arguments = {"config": config, "server_state": server_state, "app_state": app_state, "_loop": _loop}
        self._connections: set[Any] = server_state.connections
        self._loop = _loop or asyncio.get_event_loop()
        self._raw: asyncio.Transport | None = None
        self._task: asyncio.Task[None] | None = None
        self._http: GuardedH11Protocol | None = None
        self._address: str | None = None  # counted by address until the HTTP protocol takes the connection
        self._early: list[bytes] = []
        self._hello: list[bytes] = []

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        limits = self.limits
        if len(self._connections) + len(limits.handshaking) >= limits.max_connections:
            limits.refused += 1
            transport.abort()
            return
        self._address = limits.admit(transport)
        if self._address is None:
            transport.abort()
            return
        self._raw = transport
        limits.handshaking.add(transport)
        self._task = self._loop.create_task(self._handshake(transport))

    async def _handshake(self, transport: asyncio.Transport) -> None:
        # Bytes that came before the handshake began (the ClientHello: uvloop starts reading after
        # `connection_made`, before this task's first step) go to the TLS protocol that `start_tls` installs
        # before it first yields, so ahead of that protocol's own start.
        self._loop.call_soon(self._hand_over_hello, transport)
        try:
            secured = await self._loop.start_tls(
                transport,
                self,
                self.context,
                server_side=True,
                ssl_handshake_timeout=self.limits.request_timeout,
            )
        except (OSError, TimeoutError, ConnectionError, asyncio.CancelledError):
            transport.abort()
            self._release_address()
            return
        finally:
            self.limits.handshaking.discard(transport)
        if secured is None:  # closed during the handshake
            self._release_address()
            return
        http = self._http = self.http(**self._arguments)
        http.take_address(self._address)
        self._address = None
        secured.set_protocol(http)
        http.connection_made(secured)
        for data in self._early:
            http.data_received(data)
        self._early.clear()

    def _hand_over_hello(self, transport: asyncio.Transport) -> None:
        hello, self._hello = b"".join(self._hello), []
        tls = transport.get_protocol()
        if not hello or tls is self or transport.is_closing():
            return
        # Both asyncio's and uvloop's TLS protocols are buffered protocols (uvloop's is not a subclass of
        # asyncio.BufferedProtocol, hence no isinstance).
        buffered: Any = tls
        while hello:
            buffer = memoryview(buffered.get_buffer(len(hello)))
            size = min(len(buffer), len(hello))
            buffer[:size] = hello[:size]
            buffered.buffer_updated(size)
            hello = hello[size:]

    def data_received(self, data: bytes) -> None:
        raw = self._raw
        if raw is not None and raw.get_protocol() is self:
            # Before the handshake began: the start of the ClientHello (see `_handshake`).
            raw.pause_reading()
            self._hello.append(data)
        elif self._http is not None:
            self._http.data_received(data)
        else:
            # Application data that arrived between the end of the handshake and the handover.
            self._early.append(data)

    def eof_received(self) -> None:
        if self._http is not None:
            self._http.eof_received()

    def _release_address(self) -> None:
        if self._address is not None:
            self.limits.per_address.release(self._address)
            self._address = None

    def connection_lost(self, exc: Exception | None) -> None:
        self._release_address()
        if self._raw is not None:
            self.limits.handshaking.discard(self._raw)
        if self._http is not None:
            self._http.connection_lost(exc)
        elif self._task is not None and not self._task.done():
            self._task.cancel()


def guarded_protocol(limits: ConnectionLimits, tls: ssl.SSLContext | None = None) -> type[asyncio.Protocol]:
    """The protocol class for one listener (uvicorn instantiates it per connection); with ``tls``, uvicorn
    listens on plain TCP and `TlsHandshake` does TLS with that context."""
    http = type("GuardedH11Protocol", (GuardedH11Protocol,), {"limits": limits, "counts_addresses": tls is None})
    if tls is None:
        return http
    return type("TlsHandshake", (TlsHandshake,), {"limits": limits, "http": http, "context": tls})
