"""One HTTP/2 connection: an `asyncio.Protocol` over an ``h2`` state machine, serving gRPC calls as tasks.

Output is batched: whatever ``h2`` has to send (DATA of every subscriber woken by one publish, trailers, SETTINGS
and PING acks, WINDOW_UPDATEs) leaves in one ``transport.write`` at the end of the loop turn. Flow control both
ways: a writer whose stream or connection window is closed, or whose socket buffer is full, waits (its
subscription's cursor waits with it); received DATA is acknowledged when its request is complete (or dropped),
so what a client may send ahead is its connection's request budget (``_limits``).

Before a call runs, its HEADERS are checked (method, route, token) and its request must arrive whole within the
request timeout; the server's reaper (``_server``) enforces the deadlines a connection keeps here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, cast

import grpc
import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
from h2.stream import H2Stream, StreamInputs

from tidings.server._notices import WrongPortNotices
from tidings.server._peers import ConnectionsPerAddress, peer_address
from tidings.server.grpc._context import CallAborted, Metadata
from tidings.server.grpc._h2._call import H2Call
from tidings.server.grpc._h2._intake import RequestIntake
from tidings.server.grpc._h2._limits import (
    INITIAL_CONNECTION_WINDOW,
    MAX_DECODED_HEADER_LIST_SIZE,
    MAX_HEADER_LIST_SIZE,
    PENDING_HEADER_BUDGET,
    RECEIVE_SLICE,
    STREAM_COST,
    HeaderRate,
    Notices,
    header_list_size,
    request_budget,
)
from tidings.server.grpc._h2._state import StateMachine
from tidings.server.grpc._h2._wire import (
    HEADERS_FLAGS,
    OK_TRAILER_BLOCK,
    OK_TRAILERS,
    PREFIX_SIZE,
    RESPONSE_HEADER_BLOCK,
    RESPONSE_HEADERS,
    TRAILERS_FLAGS,
    goaway_frame,
    pack_data_header,
    pack_frame_header,
    pack_prefix,
    parse_timeout,
    status_headers,
)

logger = logging.getLogger("tidings.server.grpc.h2")

Behaviour = Callable[[bytes, Any], Awaitable[Any]]
# Checks a request's credential at its HEADERS, before its body is read: (path, ``authorization`` value or None)
# -> None to go on, or why it is UNAUTHENTICATED.
CredentialCheck = Callable[[str, str | None], str | None]

# h2's inbound header validation was a fifth of a unary call. It is off: the transport matches only the exact
# lower-case names it needs (a malformed :method, :path, content-type or te gets its error response), and the rest
# is metadata that servicers look up by exact name (an "Authorization" is not "authorization": no credentials).
_CONFIG: Final = h2.config.H2Configuration(
    client_side=False, header_encoding=None, validate_inbound_headers=False, normalize_inbound_headers=False
)
_MAX_FRAME_SIZE: Final = 1 << 16
_MAX_WINDOW: Final = (1 << 31) - 1
_OK: Final = grpc.StatusCode.OK
_REFUSED_STREAM: Final = h2.errors.ErrorCodes.REFUSED_STREAM
# The request line an HTTP/1.x client starts with (instead of the HTTP/2 preface).
_HTTP1_REQUEST: Final = re.compile(rb"[A-Z]{3,10} \S+ HTTP/1\.[01]\r?\n")


@dataclass(frozen=True, slots=True)
class Route:
    """A method: its behaviour (the servicer's coroutine function) and whether it streams responses."""

    behaviour: Behaviour
    streaming: bool


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


class H2Connection(asyncio.Protocol):
    """Serves the gRPC calls of one client connection."""

    def __init__(self, options: ConnectionOptions) -> None:
        self._options = options
        self._loop = asyncio.get_running_loop()
        settings = {
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: options.max_concurrent_streams,
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: options.stream_window,
            h2.settings.SettingCodes.MAX_FRAME_SIZE: _MAX_FRAME_SIZE,
            h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: MAX_HEADER_LIST_SIZE,
        }
        self._h2 = StateMachine(_CONFIG, settings)
        self._transport: asyncio.Transport | None = None
        self._backlog: bytearray | None = None  # received bytes waiting for their loop turn (`RECEIVE_SLICE`)
        self._address: str | None = None  # the peer's address, once counted in `per_address`
        self._calls: dict[int, H2Call] = {}
        # Requests still arriving, and what they may hold.
        self._intake = RequestIntake(options.request_budget, PENDING_HEADER_BUDGET, options.header_rate())
        self._window_owed = 0  # connection window to give back to the client (`_give_back`)
        self._blocked: set[H2Call] = set()  # calls waiting for a window
        self._flush_scheduled = False
        self._out: list[bytes] = []  # frames due, in order: h2's output is moved here before each DATA frame
        self._writable: asyncio.Future[None] | None = None  # set while the socket buffer is over its mark
        self._going_away = False
        self._calmed = False  # closed for the header bytes it made the server decode for nothing
        self._first_bytes = True
        self.preface_received = False  # the client's preface and first SETTINGS
        self.connected_at = self.last_received = self.last_call_at = self._loop.time()
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

    def _receive(self, data: bytes) -> None:
        """Hand received bytes to h2 and act on the events they make."""
        try:
            events = self._h2.receive_data(data)
        except h2.exceptions.ProtocolError as error:
            # Drop this connection only, with a GOAWAY naming the error (h2 queues one for most errors, not for
            # a wrong preface).
            self._log_protocol_error(error)
            if self._h2.state_machine.state is not h2.connection.ConnectionState.CLOSED:
                code = getattr(error, "error_code", None) or h2.errors.ErrorCodes.PROTOCOL_ERROR
                self._flush()
                if self._transport is not None:
                    self._transport.write(goaway_frame(self._h2.highest_inbound_stream_id, code))
            self._close_now()
            return
        for event in events:
            if self._calmed:
                return
            kind = type(event)
            if kind is h2.events.DataReceived:
                self._on_data(event)  # type: ignore[arg-type]
            elif kind is h2.events.RequestReceived:
                self._on_request(event)  # type: ignore[arg-type]
            elif kind is h2.events.StreamEnded:
                self._on_request_end(event.stream_id)  # type: ignore[attr-defined]
            elif kind is h2.events.WindowUpdated:
                self._on_window(event.stream_id)  # type: ignore[attr-defined]
            elif kind is h2.events.RemoteSettingsChanged:
                self.preface_received = True  # the client's first SETTINGS follows its preface
                self._on_window(0)
            elif kind is h2.events.StreamReset:
                self._on_reset(event.stream_id)  # type: ignore[attr-defined]
            elif kind is h2.events.ConnectionTerminated:
                self._going_away = True  # the client is leaving; its open calls go on until it closes
            elif kind is h2.events.TrailersReceived:  # gRPC clients send none: decoded for nothing
                self._decoded_for_nothing(header_list_size(event.headers))  # type: ignore[attr-defined]
        # What h2 answers at once (SETTINGS and PING acks, WINDOW_UPDATEs, refusals) leaves at the end of this loop
        # turn. Nothing to answer, no flush: a publish's deliveries, queued when its task runs, then leave before
        # its own response, rather than after it.
        queued = self._h2.data_to_send()
        if queued:
            self._out.append(queued)
            self._schedule_flush()

    def _log_protocol_error(self, error: h2.exceptions.ProtocolError) -> None:
        """Log why a connection is dropped: at INFO for a broken client, through the rate-limited notices for
        one over a limit (which may be one of a flood)."""
        notices = self._options.notices
        if isinstance(error, h2.exceptions.TooManyStreamsError):
            limit = self._options.max_concurrent_streams
            notices.seen("closed a gRPC connection from %s that opened more than %d streams", self._address, limit)
        elif isinstance(error, h2.exceptions.DenialOfServiceError):
            notices.seen(
                "closed a gRPC connection from %s that sent a header list over %d bytes",
                self._address,
                MAX_DECODED_HEADER_LIST_SIZE,
            )
        else:
            logger.info("closing an HTTP/2 connection: %s", error)

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

    def peer(self) -> str:
        """The client's address as grpcio writes it (``ipv4:127.0.0.1:5000``, ``ipv6:[::1]:5000``), for the log."""
        transport = self._transport
        address = transport.get_extra_info("peername") if transport is not None else None
        if not isinstance(address, tuple):
            return "unknown"
        host, port = address[0], address[1]
        return f"ipv6:[{host}]:{port}" if ":" in host else f"ipv4:{host}:{port}"

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

    def _decoded_for_nothing(self, size: int) -> None:
        """Charge ``size`` decoded header bytes that serve no call to the connection's `HeaderRate`; past it,
        GOAWAY ENHANCE_YOUR_CALM and close (nothing more it sent is decoded)."""
        if self._intake.decoded_for_nothing(size) or self._calmed:
            return
        self._options.notices.seen(
            "closed a gRPC connection from %s: header bytes of requests it was not served over the rate "
            "(GOAWAY ENHANCE_YOUR_CALM)",
            self._address,
        )
        self._backlog = None
        self._flush()
        self._calmed = self._going_away = True  # nothing more is sent (`_flush`) or decoded
        if self._transport is not None:
            code = h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
            self._transport.write(goaway_frame(self._h2.highest_inbound_stream_id, code))
            self._transport.close()

    def pause_writing(self) -> None:
        if self._writable is None:
            self._writable = self._loop.create_future()
        # A client that does not read (a PING flood whose acks pile up) stops being read too.
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        writable, self._writable = self._writable, None
        if writable is not None and not writable.done():
            writable.set_result(None)
        if self._transport is not None and not self._transport.is_closing() and self._backlog is None:
            self._transport.resume_reading()

    # Requests

    def _on_request(self, event: h2.events.RequestReceived) -> None:
        stream_id = event.stream_id
        if self._going_away:
            self._h2.reset_stream(stream_id, _REFUSED_STREAM)
            return
        headers: list[tuple[bytes, bytes]] = event.headers  # bytes: header_encoding None
        method = path = content_type = te = timeout = b""
        authorization: bytes | None = None
        size = 32 * len(headers)  # decoded size (RFC 7540 6.5.2)
        for name, value in headers:
            size += len(name) + len(value)
            if name[:1] == b":":
                if name == b":path":
                    path = value
                elif name == b":method":
                    method = value
            elif name == b"content-type":
                content_type = value
            elif name == b"te":
                te = value
            elif name == b"grpc-timeout":
                timeout = value
            elif name == b"authorization" and authorization is None:
                authorization = value
        if method != b"POST":
            self._respond_http(stream_id, b"405", size)
            return
        if not content_type.startswith(b"application/grpc"):
            self._respond_http(stream_id, b"415", size)
            return
        call = self._calls[stream_id] = H2Call(self, stream_id, path.decode("ascii", "replace"), headers)
        refusal = self._refusal(call, size, te, timeout, authorization)
        if refusal is not None:
            # The client's address and the reason, never its token (as `guarded` logs what the servicers refuse).
            logger.debug("%s from %s answered %s: %s", call.path, call.peer(), refusal[0].name, refusal[1])
            self._decoded_for_nothing(size)
            self.end_call(call, *refusal)
            return
        if not self._intake.admit(call, size + STREAM_COST, call.received_at):
            self._decoded_for_nothing(size)
            self._refuse(call)

    def _refusal(
        self, call: H2Call, size: int, te: bytes, timeout: bytes, authorization: bytes | None
    ) -> tuple[grpc.StatusCode, str, Metadata] | None:
        """Why ``call`` is answered at its HEADERS (status, message, trailing metadata), or None: it goes on,
        its time of arrival and deadline set."""
        if size > MAX_HEADER_LIST_SIZE:
            return (
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"request headers of {size} bytes exceed the limit of {MAX_HEADER_LIST_SIZE}",
                (("err", "request_size_limit_exceeded"),),
            )
        if te != b"trailers":
            return grpc.StatusCode.INTERNAL, "te: trailers is required", ()
        if call.path not in self._options.routes:
            return grpc.StatusCode.UNIMPLEMENTED, f"Method not found: {call.path}", ()
        now = call.received_at = self._loop.time()
        if timeout:
            seconds = parse_timeout(timeout)
            if seconds is None:
                return grpc.StatusCode.INTERNAL, f"malformed grpc-timeout {timeout!r}", ()
            call.deadline = now + seconds
        check = self._options.credential_check
        if check is not None:  # before a byte of the body is held
            unauthenticated = check(call.path, None if authorization is None else authorization.decode("latin-1"))
            if unauthenticated is not None:
                return grpc.StatusCode.UNAUTHENTICATED, unauthenticated, ()
        return None

    def _on_data(self, event: h2.events.DataReceived) -> None:
        stream_id = event.stream_id
        size = event.flow_controlled_length
        call = self._intake.get(stream_id)
        if call is None:  # the request was answered, refused or reset: its bytes are dropped
            self._give_back(size)
            return
        self._intake.receive(call, event.data, size)
        if len(call.body) > self._options.max_message_length + PREFIX_SIZE:
            limit = self._options.max_message_length
            # Our own limit answer (RESOURCE_EXHAUSTED + err), which grpcio cannot give for its receive limit.
            self.end_call(
                call,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"request larger than {limit} bytes",
                (("err", "request_size_limit_exceeded"),),
            )

    def _on_request_end(self, stream_id: int) -> None:
        call = self._intake.get(stream_id)
        if call is None:
            return
        body = call.body
        call.body = bytearray()
        self._release(call)
        if len(body) < PREFIX_SIZE:
            self.end_call(call, grpc.StatusCode.INTERNAL, "the request has no message")
            return
        if body[0] != 0:
            self.end_call(call, grpc.StatusCode.UNIMPLEMENTED, "compressed requests are not supported")
            return
        if int.from_bytes(body[1:PREFIX_SIZE]) != len(body) - PREFIX_SIZE:
            self.end_call(call, grpc.StatusCode.INTERNAL, "a unary request needs exactly one message")
            return
        route = self._options.routes[call.path]
        self.last_call_at = self._loop.time()
        task = call.task = self._loop.create_task(self._run(call, route, bytes(body[PREFIX_SIZE:])))
        tasks = self._options.tasks
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def _on_reset(self, stream_id: int) -> None:
        call = self._calls.pop(stream_id, None)
        if call is not None:
            call.ended = True
            if call.task is not None:
                call.task.cancel()
            elif self._intake.get(stream_id) is not None:  # reset before its request was whole
                self._release(call)
                self._decoded_for_nothing(call.cost - STREAM_COST)

    def _release(self, call: H2Call) -> None:
        """Forget ``call`` as a request still arriving: give its share of the budget back, and its bytes to
        the client's flow-control window."""
        self._give_back(self._intake.release(call))

    def _give_back(self, size: int) -> None:
        """Owe the client ``size`` bytes of connection window (received, and no longer held): returned with the
        next flush once they are a quarter of the budget, or sooner when the window left could not carry a whole
        request (`_return_window`)."""
        if size:
            self._window_owed += size
            self._schedule_flush()

    def _return_window(self) -> None:
        owed = self._window_owed
        if owed >= self._intake.body_budget // 4 or self._h2.inbound_flow_control_window < self._options.stream_window:
            self._window_owed = 0
            self._h2.increment_flow_control_window(owed)

    def _refuse(self, call: H2Call) -> None:
        """Refuse ``call`` at its HEADERS, its connection's unfinished requests holding their header budget
        (RST_STREAM REFUSED_STREAM: nothing was processed)."""
        call.ended = True
        self._calls.pop(call.stream_id, None)
        with contextlib.suppress(h2.exceptions.StreamClosedError):
            self._h2.reset_stream(call.stream_id, _REFUSED_STREAM)
        self._schedule_flush()
        self._options.notices.seen(
            "refused a stream of a gRPC connection from %s: its unfinished requests hold %d bytes of headers",
            self._address,
            self._intake.header_budget,
        )

    def _respond_http(self, stream_id: int, status: bytes, header_size: int) -> None:
        """Answer a request that is not gRPC with an HTTP ``status`` alone."""
        self._decoded_for_nothing(header_size)
        self._h2.send_headers(stream_id, ((b":status", status),), end_stream=True)

    # Calls

    async def _run(self, call: H2Call, route: Route, request: bytes) -> None:
        try:
            if call.deadline is None:
                response = await route.behaviour(request, call)
            else:
                deadline = asyncio.timeout_at(call.deadline)
                try:
                    async with deadline:
                        response = await route.behaviour(request, call)
                except TimeoutError:
                    if not deadline.expired():  # the servicer's own TimeoutError, not the deadline
                        raise
                    self.end_call(call, grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
                    return
            if not route.streaming:
                await call.write(response)
            self.end_call(call, _OK, "")
        except CallAborted:
            pass
        except Exception:
            logger.exception("unexpected fault in %s", call.path)
            self.end_call(call, grpc.StatusCode.UNKNOWN, "unexpected server error")

    def try_send(self, call: H2Call, messages: Sequence[bytes]) -> bool:
        """Queue ``messages``, one DATA frame each, when the windows and frame size allow them all (the hot
        path); False, queueing none, when the caller must await `send_message`.

        DATA frames are framed here rather than by ``h2`` (measured: its ``send_data`` was two thirds of the
        delivery path), and ``h2``'s window counters are decremented by the same amounts, so that its
        WINDOW_UPDATE and SETTINGS accounting stays right.
        """
        stream = call.h2_stream
        if stream is None or call.ended or self._writable is not None:
            return False
        connection = self._h2
        largest = max(map(len, messages)) + PREFIX_SIZE
        total = len(messages) * PREFIX_SIZE + sum(map(len, messages))
        if total > stream.outbound_flow_control_window or total > connection.outbound_flow_control_window:
            return False
        if largest > connection.max_outbound_frame_size:
            return False
        data = connection.data_to_send()  # what h2 queued (HEADERS first) goes out before these frames
        out = self._out
        if data:
            out.append(data)
        stream_id = call.stream_id
        for message in messages:
            size = PREFIX_SIZE + len(message)
            out.append(pack_data_header(size >> 8, size & 0xFF, 0, 0, stream_id, 0, len(message)))
            out.append(message)
        stream.outbound_flow_control_window -= total
        connection.outbound_flow_control_window -= total
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)
        return True

    async def send_message(self, call: H2Call, message: bytes) -> None:
        """Send ``message`` on ``call``'s stream, as DATA frames the windows allow, waiting for them."""
        if call.ended:
            raise asyncio.CancelledError  # reset by the client; its task is being cancelled
        connection = self._h2
        stream_id = call.stream_id
        if call.h2_stream is None:
            call.headers_sent = True
            call.h2_stream = connection.streams[stream_id]
            self._send_header_block(call.h2_stream, RESPONSE_HEADERS, RESPONSE_HEADER_BLOCK, end_stream=False)
            if self.try_send(call, (message,)):
                return
        data = memoryview(pack_prefix(0, len(message)) + message)
        while data:
            if self._writable is not None:
                await self._writable
                if call.ended:
                    raise asyncio.CancelledError
                continue
            stream = call.h2_stream
            chunk = min(
                stream.outbound_flow_control_window,
                connection.outbound_flow_control_window,
                connection.max_outbound_frame_size,
                len(data),
            )
            if chunk <= 0:
                await self._window_opened(call)
                continue
            queued = connection.data_to_send()
            if queued:
                self._out.append(queued)
            self._out.append(pack_frame_header(chunk >> 8, chunk & 0xFF, 0, 0, stream_id))
            self._out.append(bytes(data[:chunk]))
            stream.outbound_flow_control_window -= chunk
            connection.outbound_flow_control_window -= chunk
            data = data[chunk:]
        self._schedule_flush()

    def _send_header_block(
        self, stream: H2Stream, headers: tuple[tuple[bytes, bytes], ...], block: bytes, *, end_stream: bool
    ) -> None:
        """Send ``headers``, pre-encoded as ``block`` (response headers, OK trailers), in one HEADERS frame.

        ``h2``'s ``send_headers`` (HPACK encoding, frame objects) was the largest part of a unary call; these
        blocks never change, so they are encoded once. The stream's state machine takes the same inputs
        ``send_headers`` would give it, so ``h2`` knows the stream's state as if it had sent them.
        """
        if self._h2.encoder.table_size_changes:
            # The client changed its HPACK table size: the next block must begin with the size update, which
            # only h2's encoder can write. Rare (clients keep the default); h2 encodes this one.
            self._h2.send_headers(stream.stream_id, headers, end_stream=end_stream)
            return
        state = stream.state_machine
        state.process_input(StreamInputs.SEND_HEADERS)
        if end_stream:
            state.process_input(StreamInputs.SEND_END_STREAM)
        queued = self._h2.data_to_send()
        out = self._out
        if queued:
            out.append(queued)
        size = len(block)
        flags = TRAILERS_FLAGS if end_stream else HEADERS_FLAGS
        out.append(pack_frame_header(size >> 8, size & 0xFF, 0x1, flags, stream.stream_id))
        out.append(block)

    async def _window_opened(self, call: H2Call) -> None:
        waiter = call.window_waiter = self._loop.create_future()
        self._blocked.add(call)
        self._schedule_flush()  # what is queued must go out for the client to open its window
        try:
            await waiter
        finally:
            call.window_waiter = None
            self._blocked.discard(call)
        if call.ended:
            raise asyncio.CancelledError

    def _on_window(self, stream_id: int) -> None:
        calls = list(self._blocked) if stream_id == 0 else (self._calls.get(stream_id),)
        for call in calls:
            if call is not None and call.window_waiter is not None and not call.window_waiter.done():
                call.window_waiter.set_result(None)

    def end_call(self, call: H2Call, code: grpc.StatusCode, details: str, trailing_metadata: Metadata = ()) -> None:
        """Send ``call``'s status (Trailers-Only when no response headers went out) and forget the call."""
        if call.ended:
            return
        call.ended = True
        if self._calls.get(call.stream_id) is call:
            del self._calls[call.stream_id]
        if call.task is None:
            self._release(call)  # answered while its request was still arriving
        else:
            self.last_call_at = self._loop.time()
        if self._transport is None:
            return
        if code is _OK and call.h2_stream is not None and not trailing_metadata:
            with contextlib.suppress(h2.exceptions.ProtocolError):  # the stream was reset meanwhile
                self._send_header_block(call.h2_stream, OK_TRAILERS, OK_TRAILER_BLOCK, end_stream=True)
            self._schedule_flush()
            return
        trailers = status_headers(code, details, trailing_metadata)
        if not call.headers_sent:
            call.headers_sent = True
            trailers = [*RESPONSE_HEADERS, *trailers]
        connection = self._h2
        try:
            connection.send_headers(call.stream_id, trailers, end_stream=True)
            if call.task is None and code is not _OK:
                # Ended before the request was read: the client may still be sending; stop it.
                connection.reset_stream(call.stream_id, h2.errors.ErrorCodes.NO_ERROR)
        except h2.exceptions.StreamClosedError:
            pass
        self._schedule_flush()

    # Output

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._window_owed:
            self._return_window()
        out = self._out
        data = self._h2.data_to_send()
        if data:
            out.append(data)
        if out:
            if self._transport is not None and not self._calmed:
                self._transport.write(b"".join(out))
            out.clear()

    def _close_now(self) -> None:
        self._backlog = None
        self._flush()
        if self._transport is not None:
            self._transport.close()

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

    @property
    def idle_since(self) -> float | None:
        """Since when no call has run on this connection (None while one does): requests still arriving are not
        calls, and neither are PINGs."""
        return None if len(self._calls) > len(self._intake) else self.last_call_at

    def expire_requests(self, received_before: float) -> None:
        """End the calls whose request began arriving (HEADERS) before ``received_before`` and is not whole yet:
        DEADLINE_EXCEEDED, and the client told to stop sending it."""
        for call in self._intake.expired(received_before):
            self.end_call(call, grpc.StatusCode.DEADLINE_EXCEEDED, "the request did not arrive in time")
            self._decoded_for_nothing(call.cost - STREAM_COST)
            self._options.notices.seen(
                "ended a call from %s whose request did not arrive within --request-timeout", self._address
            )

    def end_calls(self, code: grpc.StatusCode, details: str) -> None:
        """End every open call with ``code`` and cancel its task (shutdown past its grace)."""
        for call in list(self._calls.values()):
            self.end_call(call, code, details)
            if call.task is not None:
                call.task.cancel()

    def ping(self) -> None:
        """Send a keepalive PING (the reaper closes the connection when no answer comes)."""
        self.ping_sent_at = self._loop.time()
        self._h2.ping(b"tidings!")
        self._schedule_flush()

    def close(self) -> None:
        """Flush and close the connection."""
        self._close_now()
