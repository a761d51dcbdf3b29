"""`H2Receive`: what a connection receives, from bytes to its calls.

Until the client's preface and first SETTINGS are in, received bytes go to ``h2`` as they come. From then on the
connection splits them into frames itself, and the two frames of a unary call take a path of their own:

- a HEADERS frame opening a new stream whose header block `_head.HeadCache` knows (the same bytes as an earlier
  request's, the HPACK table unchanged since): the stream is opened in ``h2``'s state as ``h2`` would open it,
  and the call with the head decoded before: no HPACK decoding, no header parsing, no frame or event objects;
- an unpadded DATA frame of a request still arriving, within the windows: counted against ``h2``'s windows (and
  its END_STREAM in the stream's state) as ``h2`` would count it, and taken into the request;
- a WINDOW_UPDATE of the connection or of an open stream (grpc-core sends two per response it reads): the send
  window opened as ``h2`` would open it.

Every other frame, and any of these that is not plainly valid (a window overrun, a stream over the limit, a block
spanning CONTINUATION frames, a stream id out of order, a connection going away), goes to ``h2``, in order, so
that errors and every other frame are handled by ``h2`` as before. A HEADERS frame that ``h2`` decodes goes to it
alone, so that its block can be kept when decoding it left the HPACK table unchanged.

Measured on the publish benchmark: ``h2``'s ``receive_data`` was 64% of the server's CPU per publish, a third of
it HPACK-decoding headers that were the same index bytes on every call.
"""

from __future__ import annotations

import logging
import struct
from typing import TYPE_CHECKING, Final

import h2.connection
import h2.errors
import h2.events
import h2.exceptions
from h2.connection import AllowedStreamIDs, ConnectionState
from h2.stream import StreamInputs, StreamState

from tidings.server.grpc._h2._calls import CallOptions, H2Calls
from tidings.server.grpc._h2._head import HeadCache, RequestHead
from tidings.server.grpc._h2._limits import MAX_DECODED_HEADER_LIST_SIZE, header_list_size
from tidings.server.grpc._h2._wire import goaway_frame

if TYPE_CHECKING:
    from tidings.server.grpc._h2._state import StateMachine

logger = logging.getLogger("tidings.server.grpc.h2")

_FRAME_HEADER: Final = struct.Struct(">HBBBI")  # length (16 + 8 bits), type, flags, stream id (and its R bit)
_FRAME_HEADER_SIZE: Final = 9
_DATA: Final = 0x0
_HEADERS: Final = 0x1
_END_STREAM: Final = 0x1
_END_HEADERS: Final = 0x4
_STREAM_ID: Final = 0x7FFFFFFF
_OPEN: Final = ConnectionState.SERVER_OPEN  # a server connection once its first request came in
_STREAM_OPEN: Final = StreamState.OPEN
_STREAM_CLOSED: Final = StreamState.CLOSED
_WINDOW_STATES: Final = (StreamState.OPEN, StreamState.HALF_CLOSED_REMOTE)  # send windows a client may open
_WINDOW_UPDATE: Final = 0x8
_INCREMENT: Final = struct.Struct(">I")
_MAX_WINDOW: Final = (1 << 31) - 1


class H2Receive(H2Calls):
    """Received bytes to frames, the frames of unary calls to the calls, the rest to ``h2`` and its events."""

    def __init__(self, options: CallOptions, state_machine: StateMachine) -> None:
        super().__init__(options, state_machine)
        self.preface_received = False  # the client's preface and first SETTINGS
        self._framing = False  # received bytes are split into frames here
        self._partial = bytearray()  # the start of a frame not whole yet
        self._wanted = 0  # the bytes ``_partial`` must hold before a frame in it can be whole
        self._heads = HeadCache(state_machine.header_table)

    def _receive(self, data: bytes) -> None:
        """Act on received bytes; what ``h2`` answers at once (SETTINGS and PING acks, WINDOW_UPDATEs, refusals)
        leaves at the end of this loop turn."""
        if self._framing:
            self._receive_frames(data)
        elif self._receive_h2(data) and self.preface_received:
            buffer = self._h2.incoming_buffer
            # Frames are split here once h2 holds none in part (nor a header block waiting for CONTINUATIONs).
            self._framing = not buffer._data and not buffer._headers_buffer
        # Nothing to answer, no flush: a publish's deliveries, queued when its task runs, then leave before its own
        # response, rather than after it.
        queued = self._h2.queued()
        if queued:
            self._out.append(queued)
            self._schedule_flush()

    def _receive_frames(self, data: bytes) -> None:
        partial = self._partial
        if partial:  # a frame arriving in pieces is gathered, not joined again at each piece
            partial += data
            if len(partial) < self._wanted:
                return
            data = bytes(partial)
            partial.clear()
        unpack = _FRAME_HEADER.unpack_from
        end = len(data)
        position = 0
        passed = -1  # where the frames for h2 that it was not handed yet begin
        while end - position >= _FRAME_HEADER_SIZE:
            high, low, kind, flags, stream_id = unpack(data, position)
            length = high << 8 | low
            if length > self._h2.max_inbound_frame_size:  # h2 refuses it, as it refuses whatever it cannot split
                self._framing = False
                self._receive_h2(data[position if passed < 0 else passed :])
                return
            start = position + _FRAME_HEADER_SIZE
            stop = start + length
            if stop > end:
                break
            if kind <= _HEADERS or kind == _WINDOW_UPDATE:  # what came before may open, end or reset its stream
                if passed >= 0:
                    if not self._receive_h2(data[passed:position]):
                        return
                    passed = -1
                if kind == _DATA:
                    handled = self._fast_data(flags, stream_id & _STREAM_ID, data, start, stop)
                elif kind == _WINDOW_UPDATE:
                    handled = length == 4 and self._fast_window_update(stream_id & _STREAM_ID, data, start)
                elif flags == _END_HEADERS:
                    block = data[start:stop]
                    handled = self._fast_headers(stream_id & _STREAM_ID, block) or self._receive_h2(
                        data[position:stop], block
                    )
                    if not handled:  # the connection is closed
                        return
                else:
                    handled = False
                if handled:
                    if self._calmed:
                        return
                    position = stop
                    continue
            if passed < 0:
                passed = position
            position = stop
        if passed >= 0 and not self._receive_h2(data[passed:position]):
            return
        if position < end:
            self._partial += memoryview(data)[position:]
            self._wanted = _FRAME_HEADER_SIZE
            if end - position >= _FRAME_HEADER_SIZE:
                high, low = data[position], int.from_bytes(data[position + 1 : position + 3], "big")
                self._wanted += high << 16 | low

    def _fast_headers(self, stream_id: int, block: bytes) -> bool:
        """Open a call from HEADERS whose ``block`` is known, as ``h2`` would open its stream; False when ``h2``
        must take the frame (an unknown block, a stream id out of order, past the stream limit, not open)."""
        connection = self._h2
        if (
            stream_id & 1 == 0
            or stream_id <= connection.highest_inbound_stream_id
            or connection.state_machine.state is not _OPEN
        ):
            return False
        head = self._heads.get(block)
        if head is None or connection.open_inbound_streams >= connection.local_settings.max_concurrent_streams:
            return False
        stream = connection._begin_new_stream(stream_id, AllowedStreamIDs.ODD)
        stream.state_machine.process_input(StreamInputs.RECV_HEADERS)
        self._open_call(stream_id, head)
        return True

    def _fast_data(self, flags: int, stream_id: int, data: bytes, start: int, stop: int) -> bool:
        """Take a DATA frame of a request still arriving into it, counted against the windows as ``h2`` counts
        it; False when ``h2`` must take the frame (padded, of no such request, over a window)."""
        if flags & ~_END_STREAM:
            return False
        call = self._intake.get(stream_id)
        if call is None:
            return False
        connection = self._h2
        stream = connection.streams.get(stream_id)
        size = stop - start
        if (
            stream is None
            or connection.state_machine.state is not _OPEN
            or stream.state_machine.state is not _STREAM_OPEN
            or stream._expected_content_length is not None
        ):
            return False
        connection_window = connection._inbound_flow_control_window_manager
        stream_window = stream._inbound_window_manager
        if connection_window.current_window_size < size or stream_window.current_window_size < size:
            return False
        connection_window.current_window_size -= size
        stream_window.current_window_size -= size
        if flags:
            stream.state_machine.process_input(StreamInputs.RECV_END_STREAM)
        self._take_data(call, data[start:stop], size)
        if flags:
            self._on_request_end(stream_id)
        return True

    def _fast_window_update(self, stream_id: int, data: bytes, start: int) -> bool:
        """Open the connection's or a stream's send window as ``h2`` would; False when ``h2`` must take the frame
        (an increment of 0 or past the largest window, a stream it may have forgotten)."""
        connection = self._h2
        increment = _INCREMENT.unpack_from(data, start)[0] & _STREAM_ID
        if increment == 0 or connection.state_machine.state is not _OPEN:
            return False
        if stream_id == 0:
            if connection.outbound_flow_control_window + increment > _MAX_WINDOW:
                return False
            connection.outbound_flow_control_window += increment
        else:
            stream = connection.streams.get(stream_id)
            if stream is None:
                return False
            state = stream.state_machine.state
            if state is _STREAM_CLOSED:  # a late update for a stream that ended: nothing to open
                return True
            if state not in _WINDOW_STATES or stream.outbound_flow_control_window + increment > _MAX_WINDOW:
                return False
            stream.outbound_flow_control_window += increment
        self._on_window(stream_id)
        return True

    def _receive_h2(self, data: bytes, block: bytes | None = None) -> bool:
        """Hand ``data`` to ``h2`` and act on the events it makes; False when that closed the connection.
        ``block``: the header block of the one HEADERS frame ``data`` is, to keep if decoding it changed nothing."""
        changes = self._heads.changes
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
            return False
        for event in events:
            if self._calmed:
                return False
            kind = type(event)
            if kind is h2.events.DataReceived:
                self._on_data(event.stream_id, event.data, event.flow_controlled_length)  # type: ignore[attr-defined]
            elif kind is h2.events.RequestReceived:
                head = RequestHead(event.headers)  # type: ignore[attr-defined]
                if block is not None:
                    self._heads.keep(block, head, changes)
                self._open_call(event.stream_id, head)  # type: ignore[attr-defined]
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
        return not self._calmed

    def _log_protocol_error(self, error: h2.exceptions.ProtocolError) -> None:
        """Log why a connection is dropped: at INFO for a broken client, through the rate-limited notices for
        one over a limit (which may be one of a flood)."""
        notices = self._options.notices
        if isinstance(error, h2.exceptions.TooManyStreamsError):
            limit = self._h2.local_settings.max_concurrent_streams
            notices.seen("closed a gRPC connection from %s that opened more than %d streams", self._address, limit)
        elif isinstance(error, h2.exceptions.DenialOfServiceError):
            notices.seen(
                "closed a gRPC connection from %s that sent a header list over %d bytes",
                self._address,
                MAX_DECODED_HEADER_LIST_SIZE,
            )
        else:
            logger.info("closing an HTTP/2 connection: %s", error)

    def _close_now(self) -> None:
        """Send what is due and close."""
        self._partial.clear()
        self._flush()
        if self._transport is not None:
            self._transport.close()
