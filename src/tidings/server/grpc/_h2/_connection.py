"""One HTTP/2 connection: an `asyncio.Protocol` over an ``h2`` state machine, serving gRPC calls as tasks.

Output is batched: whatever ``h2`` has to send (DATA of every subscriber woken by one publish, trailers, SETTINGS
and PING acks, WINDOW_UPDATEs) leaves in one ``transport.write`` at the end of the loop turn. Flow control both
ways: a writer whose stream or connection window is closed, or whose socket buffer is full, waits (its
subscription's cursor waits with it); received DATA is acknowledged as it is consumed, bounded by the maximum
message length per call.
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
from tidings.server.grpc._context import CallAborted, Metadata
from tidings.server.grpc._h2._call import H2Call
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

# h2's inbound header validation was a fifth of a unary call. It is off: the transport matches only the exact
# lower-case names it needs (a malformed :method, :path, content-type or te gets its error response), and the rest
# is metadata that servicers look up by exact name (an "Authorization" is not "authorization": no credentials).
_CONFIG: Final = h2.config.H2Configuration(
    client_side=False, header_encoding=None, validate_inbound_headers=False, normalize_inbound_headers=False
)
# Per-stream receive window; requests are unary and bounded by the maximum message length, acknowledged as read.
_STREAM_WINDOW: Final = 1 << 20
_CONNECTION_WINDOW: Final = 16 << 20
_MAX_FRAME_SIZE: Final = 1 << 16
# Room for an over-long authorization header, so it is refused as UNAUTHENTICATED, not a broken connection.
_MAX_HEADER_LIST_SIZE: Final = 4 << 20
_OK: Final = grpc.StatusCode.OK
# The request line an HTTP/1.x client starts with (instead of the HTTP/2 preface).
_HTTP1_REQUEST: Final = re.compile(rb"[A-Z]{3,10} \S+ HTTP/1\.[01]\r?\n")


class StateMachine(h2.connection.H2Connection):
    """``h2``'s connection state machine, remembering fewer closed streams.

    ``h2`` keeps how each of the last ``MAX_CLOSED_STREAMS`` closed streams closed (so that a late frame on one it
    reset gets RST_STREAM, not a connection error). With its 65,536, every connection that carries that many
    calls holds several MiB for it: measured, the server's RSS grew by 4.4 MiB over 40,000 streams of subscribe
    and publish churn on one connection, still growing. With 4,096, which covers the frames in flight of any call
    closed since, it stayed flat after the first 8,000 streams.
    """

    MAX_CLOSED_STREAMS = 4096


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


class H2Connection(asyncio.Protocol):
    """Serves the gRPC calls of one client connection."""

    def __init__(self, options: ConnectionOptions) -> None:
        self._options = options
        self._loop = asyncio.get_running_loop()
        self._h2 = StateMachine(_CONFIG)
        self._transport: asyncio.Transport | None = None
        self._calls: dict[int, H2Call] = {}
        self._blocked: set[H2Call] = set()  # calls waiting for a window
        self._flush_scheduled = False
        self._out: list[bytes] = []  # frames due, in order: h2's output is moved here before each DATA frame
        self._writable: asyncio.Future[None] | None = None  # set while the socket buffer is over its mark
        self._going_away = False
        self.preface_received = False
        self.last_received = self._loop.time()
        self.ping_sent_at: float | None = None

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
        self._transport = cast(asyncio.Transport, transport)  # uvloop's transports are not its subclasses
        options.connections.add(self)
        connection = self._h2
        connection.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: self._options.max_concurrent_streams,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: _STREAM_WINDOW,
                h2.settings.SettingCodes.MAX_FRAME_SIZE: _MAX_FRAME_SIZE,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: _MAX_HEADER_LIST_SIZE,
            },
        )
        connection.max_inbound_frame_size = _MAX_FRAME_SIZE
        connection.decoder.max_header_list_size = _MAX_HEADER_LIST_SIZE
        # The server's preface (SETTINGS) leaves with the answer to the client's, not before: a client that sends
        # HTTP/1.1 here gets a plain HTTP/1.1 answer (`_http1_on_grpc_port`), not binary frames first.
        connection.initiate_connection()
        connection.increment_flow_control_window(_CONNECTION_WINDOW - 65_535)

    def data_received(self, data: bytes) -> None:
        self.last_received = self._loop.time()
        self.ping_sent_at = None
        if not self.preface_received and _HTTP1_REQUEST.match(data):
            self._http1_on_grpc_port()
            return
        try:
            events = self._h2.receive_data(data)
        except h2.exceptions.ProtocolError as error:
            # Drop this connection only, with a GOAWAY naming the error (h2 queues one for most errors, not for
            # a wrong preface).
            logger.info("closing an HTTP/2 connection: %s", error)
            if self._h2.state_machine.state is not h2.connection.ConnectionState.CLOSED:
                code = getattr(error, "error_code", None) or h2.errors.ErrorCodes.PROTOCOL_ERROR
                self._flush()
                if self._transport is not None:
                    self._transport.write(goaway_frame(self._h2.highest_inbound_stream_id, code))
            self._close_now()
            return
        self.preface_received = True
        for event in events:
            kind = type(event)
            if kind is h2.events.DataReceived:
                self._on_data(event)  # type: ignore[arg-type]
            elif kind is h2.events.RequestReceived:
                self._on_request(event)  # type: ignore[arg-type]
            elif kind is h2.events.StreamEnded:
                self._on_request_end(event.stream_id)  # type: ignore[attr-defined]
            elif kind is h2.events.WindowUpdated or kind is h2.events.RemoteSettingsChanged:
                self._on_window(getattr(event, "stream_id", 0))
            elif kind is h2.events.StreamReset:
                self._on_reset(event.stream_id)  # type: ignore[attr-defined]
            elif kind is h2.events.ConnectionTerminated:
                self._going_away = True  # the client is leaving; its open calls go on until it closes
        # What h2 answers at once (SETTINGS and PING acks, WINDOW_UPDATEs, refusals) leaves at the end of this loop
        # turn. Nothing to answer, no flush: a publish's deliveries, queued when its task runs, then leave before
        # its own response, rather than after it.
        queued = self._h2.data_to_send()
        if queued:
            self._out.append(queued)
            self._schedule_flush()

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
        self._transport = None
        for call in list(self._calls.values()):
            call.ended = True
            if call.task is not None:
                call.task.cancel()
        self._calls.clear()
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

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
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()

    # Requests

    def _on_request(self, event: h2.events.RequestReceived) -> None:
        stream_id = event.stream_id
        if self._going_away:
            self._h2.reset_stream(stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
            return
        headers: list[tuple[bytes, bytes]] = event.headers  # bytes: header_encoding None
        method = path = content_type = te = timeout = b""
        for name, value in headers:
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
        if method != b"POST":
            self._respond_http(stream_id, b"405")
            return
        if not content_type.startswith(b"application/grpc"):
            self._respond_http(stream_id, b"415")
            return
        call = self._calls[stream_id] = H2Call(self, stream_id, path.decode("ascii", "replace"), headers)
        if te != b"trailers":
            self.end_call(call, grpc.StatusCode.INTERNAL, "te: trailers is required")
            return
        if call.path not in self._options.routes:
            self.end_call(call, grpc.StatusCode.UNIMPLEMENTED, f"Method not found: {call.path}")
            return
        if timeout:
            seconds = parse_timeout(timeout)
            if seconds is None:
                self.end_call(call, grpc.StatusCode.INTERNAL, f"malformed grpc-timeout {timeout!r}")
                return
            call.deadline = self._loop.time() + seconds

    def _on_data(self, event: h2.events.DataReceived) -> None:
        self._h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        call = self._calls.get(event.stream_id)
        if call is None or call.ended or call.task is not None:
            return
        call.body += event.data
        if len(call.body) > self._options.max_message_length + PREFIX_SIZE:
            limit = self._options.max_message_length
            # Our own limit answer (RESOURCE_EXHAUSTED + err), which grpcio cannot give for its receive limit.
            self.end_call(
                call,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"request larger than {limit} bytes",
                (("err", "request_size_limit_exceeded"),),
            )
            call.body = bytearray()

    def _on_request_end(self, stream_id: int) -> None:
        call = self._calls.get(stream_id)
        if call is None or call.ended:
            return
        body = call.body
        call.body = bytearray()
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

    def _respond_http(self, stream_id: int, status: bytes) -> None:
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
        out = self._out
        data = self._h2.data_to_send()
        if data:
            out.append(data)
        if out:
            if self._transport is not None:
                self._transport.write(b"".join(out))
            out.clear()

    def _close_now(self) -> None:
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
