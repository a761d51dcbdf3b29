"""One HTTP/2 connection: an `asyncio.Protocol` over an ``h2`` state machine, serving gRPC calls as tasks.

One object in three layers (so that a delivery or a DATA frame costs no hop from one to another): what leaves the
connection, batched into one ``transport.write`` per loop turn (`_output.H2Output`); its calls, from their
HEADERS to their status (`_calls.H2Calls`); and here the protocol: connections past the server's limits closed at
once, received bytes decoded a slice per loop turn and ``h2``'s events handed to the calls, protocol errors, the
socket's back-pressure, and what the server's reaper and shutdown (``_server``) call.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, cast

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

from tidings.server.connections import ConnectionsPerAddress, Notices, WrongPortNotices, peer_address
from tidings.server.grpc._h2._limits import (
    INITIAL_CONNECTION_WINDOW,
    MAX_HEADER_LIST_SIZE,
    RECEIVE_SLICE,
    HeaderRate,
    request_budget,
)
from tidings.server.grpc._h2._receive import H2Receive
from tidings.server.grpc._h2._state import StateMachine
from tidings.server.grpc._h2._wire import PREFIX_SIZE, goaway_frame
from tidings.server.grpc._routes import CredentialCheck, Route

# Route and CredentialCheck (`grpc/_routes`) and StateMachine (`_state`) are imported from here too.
__all__ = ["ConnectionOptions", "CredentialCheck", "H2Connection", "Route", "StateMachine"]

logger = logging.getLogger("tidings.server.grpc.h2")

# h2's inbound header validation was a fifth of a unary call. It is off: the transport matches only the exact
# lower-case names it needs (a malformed :method, :path, content-type or te gets its error response), and the rest
# is metadata that servicers look up by exact name (an "Authorization" is not "authorization": no credentials).
_CONFIG: Final = h2.config.H2Configuration(
    client_side=False, header_encoding=None, validate_inbound_headers=False, normalize_inbound_headers=False
)
_MAX_FRAME_SIZE: Final = 1 << 16
_MAX_WINDOW: Final = (1 << 31) - 1
# The request line an HTTP/1.x client starts with (instead of the HTTP/2 preface).
_HTTP1_REQUEST: Final = re.compile(rb"[A-Z]{3,10} \S+ HTTP/1\.[01]\r?\n")


@dataclass(slots=True)
class ConnectionOptions:
    """What every connection of a server shares."""

    routes: dict[str, Route]
    max_message_length: int
    max_concurrent_streams: int
    connections: set[H2Connection]
    tasks: set[asyncio.Task[None]]  # every call in progress, for the server's shutdown
    max_connections: int = 1 << 30  # --max-connections: past it a new connection is closed at once
    refused_connections: int = 0
    http_port: int = 0  # where the HTTP API is (0: not served, or not known yet), for HTTP/1.1 clients here
    wrong_protocol: WrongPortNotices = field(default_factory=lambda: WrongPortNotices(logger))
    # --max-connections-per-address: past it a new connection from that address is closed at once.
    per_address: ConnectionsPerAddress = field(default_factory=lambda: ConnectionsPerAddress(1 << 30))
    credential_check: CredentialCheck | None = None
    header_rate: Callable[[], HeaderRate] = HeaderRate  # each connection's limit on header bytes decoded for nothing
    notices: Notices = field(default_factory=lambda: Notices(logger))

    @property
    def request_budget(self) -> int:
        """Bytes of unfinished requests one connection may have the server hold (`_limits.request_budget`)."""
        return request_budget(self.max_message_length)

    @property
    def stream_window(self) -> int:
        """Each stream's receive window: a whole request of the largest size and one byte more, so that a larger
        one is seen to be larger (and refused) while a request is never kept waiting for a WINDOW_UPDATE."""
        return min(_MAX_WINDOW, max(65_535, self.max_message_length + PREFIX_SIZE + 1))


class H2Connection(H2Receive):
    """Serves the gRPC calls of one client connection."""

    _options: ConnectionOptions

    def __init__(self, options: ConnectionOptions) -> None:
        settings = {
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: options.max_concurrent_streams,
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: options.stream_window,
            h2.settings.SettingCodes.MAX_FRAME_SIZE: _MAX_FRAME_SIZE,
            h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: MAX_HEADER_LIST_SIZE,
        }
        super().__init__(options, StateMachine(_CONFIG, settings))
        self._backlog: bytearray | None = None  # received bytes waiting for their loop turn (`RECEIVE_SLICE`)
        self._first_bytes = True
        self.connected_at = self.last_received = self.last_call_at
        self.ping_sent_at: float | None = None
        self.close_at: float | None = None  # when a connection told to go away is closed, if still open

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        options = self._options
        if len(options.connections) >= options.max_connections:
            options.refused_connections += 1
            if options.refused_connections == 1 or options.refused_connections % 1000 == 0:
                logger.warning(
                    "refused %d gRPC connections: --max-connections %d are open",
                    options.refused_connections,
                    options.max_connections,
                )
            transport.close()
            return
        address = peer_address(transport)
        per_address = options.per_address
        if not per_address.admit(address):
            if per_address.refused == 1 or per_address.refused % 1000 == 0:
                logger.warning(
                    "refused %d gRPC connections: --max-connections-per-address %d are open from %s",
                    per_address.refused,
                    per_address.limit,
                    address,
                )
            transport.close()
            return
        self._address = address
        self._transport = cast(asyncio.Transport, transport)  # uvloop's transports are not its subclasses
        options.connections.add(self)
        connection = self._h2
        connection.max_inbound_frame_size = _MAX_FRAME_SIZE
        # The server's preface (SETTINGS) leaves with the answer to the client's, not before: a client that sends
        # HTTP/1.1 here gets a plain HTTP/1.1 answer (`_http1_on_grpc_port`), not binary frames first.
        connection.initiate_connection()
        # The connection's receive window is its request budget, given back as requests complete: a client
        # cannot send more ahead than the server will hold.
        if self._intake.body_budget > INITIAL_CONNECTION_WINDOW:
            connection.increment_flow_control_window(self._intake.body_budget - INITIAL_CONNECTION_WINDOW)

    def data_received(self, data: bytes) -> None:
        self.last_received = self._loop.time()
        self.ping_sent_at = None
        if self._first_bytes:
            self._first_bytes = False
            if _HTTP1_REQUEST.match(data):
                self._http1_on_grpc_port()
                return
        if self._backlog is not None:  # earlier bytes are still waiting for their turn
            self._backlog += data
            return
        if len(data) > RECEIVE_SLICE:
            self._backlog = bytearray(data[RECEIVE_SLICE:])
            data = data[:RECEIVE_SLICE]
            if self._transport is not None:
                self._transport.pause_reading()
            self._loop.call_soon(self._receive_backlog)
        self._receive(data)

    @property
    def decoding_backlog(self) -> bool:
        """Whether bytes it sent wait to be decoded (a large read, a slice per loop turn): its unfinished requests
        may be whole in them, late by the server's own delay, so the reaper does not expire them meanwhile
        (measured: 1,000,000 streams opened at once over 5,000 connections had requests expire this way)."""
        return self._backlog is not None

    def _receive_backlog(self) -> None:
        """Decode the next `RECEIVE_SLICE` of a large read (one per loop turn: other connections are served
        between them); read again once it is all decoded."""
        backlog = self._backlog
        if backlog is None or self._transport is None or self._transport.is_closing():
            return
        if len(backlog) > RECEIVE_SLICE:
            data = bytes(backlog[:RECEIVE_SLICE])
            del backlog[:RECEIVE_SLICE]
            self._loop.call_soon(self._receive_backlog)
        else:
            data = bytes(backlog)
            self._backlog = None
            if self._writable is None and not self._transport.is_closing():
                self._transport.resume_reading()
        self._receive(data)

    def _http1_on_grpc_port(self) -> None:
        """An HTTP/1.1 request (curl, a browser, an HTTP client given the wrong port): answer it in HTTP/1.1,
        saying where the HTTP API is, log one line (a minute at most) and close."""
        options = self._options
        where = f"port {options.http_port}" if options.http_port else "the HTTP port (--http-port)"
        transport = self._transport
        peer = transport.get_extra_info("peername") if transport is not None else None
        client = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "a client"
        options.wrong_protocol.seen("%s sent an HTTP/1.1 request to the gRPC port; HTTP is served on %s", client, where)
        if transport is not None:
            body = f"This port serves gRPC (HTTP/2). The HTTP API is served on {where}.\n".encode()
            transport.write(
                b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\n"
                b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
            )
            transport.close()  # after what is written is sent

    def connection_lost(self, exc: Exception | None) -> None:
        self._options.connections.discard(self)
        if self._address is not None:
            self._options.per_address.release(self._address)
            self._address = None
        self._transport = None
        self._intake.clear()
        for call in list(self._calls.values()):
            call.ended = True
            if call.task is not None:
                call.task.cancel()
        self._calls.clear()
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def pause_writing(self) -> None:
        super().pause_writing()
        # A client that does not read (a PING flood whose acks pile up) stops being read too.
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._transport is not None and not self._transport.is_closing() and self._backlog is None:
            self._transport.resume_reading()

    def _calm_down(self) -> None:
        self._backlog = None  # nothing more it sent is decoded
        super()._calm_down()

    def _close_now(self) -> None:
        self._backlog = None
        super()._close_now()

    # Server life cycle

    def go_away(self) -> None:
        """Tell the client no new streams will be served (GOAWAY, NO_ERROR); open calls go on."""
        if self._going_away or self._transport is None:
            self._going_away = True
            return
        self._going_away = True
        self._flush()
        # Written directly: h2 refuses to send anything more once it sent a GOAWAY itself.
        self._transport.write(goaway_frame(self._h2.highest_inbound_stream_id))

    @property
    def address(self) -> str:
        """The client's IP address (for the log; ``""`` when unknown)."""
        return self._address or ""

    def ping(self) -> None:
        """Send a keepalive PING (the reaper closes the connection when no answer comes)."""
        self.ping_sent_at = self._loop.time()
        self._h2.ping(b"tidings!")
        self._schedule_flush()

    def close(self) -> None:
        """Flush and close the connection."""
        self._close_now()
