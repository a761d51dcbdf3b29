"""A lean gRPC client on raw HTTP/2 frames, for the scale benchmark's hundreds of thousands of streams.

`_h2client` runs every frame through ``h2``'s state machine, one Python object per stream: holding 100,000
idle Subscribe streams, it used as much CPU as the server it measured. Here the frames are written and parsed
by hand, sans-IO (`ClientConnection` never touches a socket; `RawChannel` drives it from an `asyncio.Protocol`):

- **requests**: a `Call` is HPACK-encoded once per (path, metadata) with static-table references and literals
  without indexing only, so the block needs no dynamic-table state and is byte-identical for every request;
  its gRPC-framed message is built once too. Opening a stream appends a HEADERS and a DATA frame to the
  outgoing buffer, and a batch of streams leaves in one ``transport.write``;
- **responses**: frames are cut from the read by their 9-byte header. A DATA frame's gRPC messages go to
  ``on_message(tag, message)``, ``tag`` being the caller's int for the stream; the response headers are skipped
  (SETTINGS_HEADER_TABLE_SIZE 0 lets the server encode nothing that a later block refers to) and only the
  trailers are HPACK-decoded, for ``on_end(tag, grpc-status, grpc-message)``;
- **HTTP/2**: SETTINGS and PING acknowledged, WINDOW_UPDATEs sent for received DATA once half a window is
  used (connection and stream, so that streams may live for ever), the server's connection window honoured
  for request DATA, RST_STREAM and GOAWAY end the streams they name.

A stream costs two 8-byte slots in `array`\\ s (its tag and its DATA bytes not yet acknowledged), indexed by
stream id: a million streams fit in one client process.
"""

from __future__ import annotations

import asyncio
import struct
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, cast
from urllib.parse import unquote

import hpack
from _h2client import CallFailed
from hpack.hpack import encode_integer

# A streaming call's handler: (its tag, one gRPC message's bytes without the 5-byte prefix).
OnMessage = Callable[[int, bytes], None]
# Called once when a call ends: (its tag, grpc-status, or -1 when the stream or connection broke, and message).
OnEnd = Callable[[int, int, str], None]

PREFACE: Final = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
# Frame header: 24-bit length (as 16 + 8 bits), type, flags, stream id (RFC 9113 4.1).
_FRAME_HEADER: Final = struct.Struct(">HBBBI")
FRAME_HEADER_SIZE: Final = 9
_U32: Final = struct.Struct(">I")
_SETTING: Final = struct.Struct(">HI")
DATA, HEADERS, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = (
    0,
    1,
    3,
    4,
    5,
    6,
    7,
    8,
    9,
)
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY = 0x1, 0x1, 0x4, 0x8, 0x20
_HEADER_TABLE_SIZE, _ENABLE_PUSH, _INITIAL_WINDOW_SIZE = 0x1, 0x2, 0x4

# Receive window per stream and per connection: 1 GiB, acknowledged once half of it is used.
WINDOW: Final = 1 << 30
_DEFAULT_WINDOW: Final = 65_535  # a new connection's (RFC 9113 6.9.2), on both sides
MAX_FRAME_SIZE: Final = 16_384  # we advertise the default: no frame from the server is larger
_MAX_MESSAGE: Final = 4 << 20  # a gRPC message split over DATA frames is reassembled up to this size
_MAX_HEADER_BLOCK: Final = 64 << 10  # HEADERS + CONTINUATION fragments of one block
_ENDED: Final = -(1 << 63)  # a stream's tag once it ended
PREFIX_SIZE: Final = 5


class ProtocolError(Exception):
    """The server broke HTTP/2 (a frame too large, a CONTINUATION out of place, a message past the bound)."""


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    """One HTTP/2 frame."""
    size = len(payload)
    return _FRAME_HEADER.pack(size >> 8, size & 0xFF, kind, flags, stream_id) + payload


# --- HPACK, encoding only what a request needs (RFC 7541) ------------------------------------------------


def hpack_integer(value: int, prefix_bits: int, first_byte: int = 0) -> bytes:
    """``value`` with an N-bit prefix (RFC 7541 5.1, ``hpack``'s encoder), the bits above the prefix taken from
    ``first_byte``."""
    encoded = encode_integer(value, prefix_bits)
    encoded[0] |= first_byte
    return bytes(encoded)


def _string(text: bytes) -> bytes:
    return hpack_integer(len(text), 7) + text  # H = 0: not Huffman-coded


def _literal(name: int | bytes, value: bytes) -> bytes:
    """A "literal header field without indexing" (RFC 7541 6.2.2): the name by static-table index, or new."""
    if isinstance(name, int):
        return hpack_integer(name, 4) + _string(value)
    return b"\x00" + _string(name) + _string(value)


# Static-table indexes (RFC 7541 appendix A): ":method: POST" and ":scheme: http" whole, the others by name.
_METHOD_POST: Final = b"\x83"  # indexed header field (6.1), index 3
_SCHEME_HTTP: Final = b"\x86"  # index 6
_AUTHORITY, _PATH, _CONTENT_TYPE = 1, 4, 31


def request_header_block(path: str, authority: str, metadata: Sequence[tuple[str, str]] = ()) -> bytes:
    """The HPACK block of a gRPC request's headers; it refers to no dynamic-table entry and adds none."""
    fields = [
        _METHOD_POST,
        _SCHEME_HTTP,
        _literal(_PATH, path.encode()),
        _literal(_AUTHORITY, authority.encode()),
        _literal(_CONTENT_TYPE, b"application/grpc"),
        _literal(b"te", b"trailers"),
        *(_literal(name.encode(), value.encode()) for name, value in metadata),
    ]
    return b"".join(fields)


@dataclass(frozen=True, slots=True)
class Call:
    """A request encoded once: its header block and its gRPC-framed message (one DATA frame each)."""

    header_block: bytes
    body: bytes

    @classmethod
    def of(cls, header_block: bytes, request: bytes) -> Call:
        """The call of ``request`` (a serialized message) under ``header_block`` (`request_header_block`)."""
        body = b"\0" + len(request).to_bytes(4) + request
        if len(header_block) > MAX_FRAME_SIZE or len(body) > MAX_FRAME_SIZE:
            raise ValueError("a request's headers and message must each fit one frame")
        return cls(header_block, body)


# --- one connection, sans-IO -----------------------------------------------------------------------------


def _settings(window: int) -> bytes:
    return b"".join(
        _SETTING.pack(code, value)
        for code, value in ((_HEADER_TABLE_SIZE, 0), (_ENABLE_PUSH, 0), (_INITIAL_WINDOW_SIZE, window))
    )


@dataclass(slots=True)
class _HeaderBlock:
    """A header block whose CONTINUATION frames are still to come."""

    stream_id: int
    ends_stream: bool
    fragments: bytearray = field(default_factory=bytearray)


class ClientConnection:
    """The client side of one HTTP/2 connection carrying gRPC calls: bytes in (`receive`), bytes out
    (`data_to_send`), each stream's messages and end handed to ``on_message`` and ``on_end`` by its tag."""

    def __init__(self, on_message: OnMessage, on_end: OnEnd, window: int = WINDOW) -> None:
        self._on_message = on_message
        self._on_end = on_end
        self._window = window
        # Stream 2k + 1 (the client's streams are odd) is at k: its tag (_ENDED once it ended), and the DATA
        # bytes received on it since its last WINDOW_UPDATE.
        self._tags = array("q")
        self._unacknowledged = array("q")
        self._partial: dict[int, bytearray] = {}  # streams whose last DATA frame ended inside a message
        self._connection_unacknowledged = 0
        self._pending = b""  # the start of a frame whose end has not arrived
        self._header_block: _HeaderBlock | None = None
        self._decoder = hpack.Decoder()
        self._send_window = _DEFAULT_WINDOW
        self._blocked: deque[bytes] = deque()  # request DATA frames waiting for the server's connection window
        self._outbound = bytearray(PREFACE)
        self._outbound += frame(SETTINGS, 0, 0, _settings(window))
        if window > _DEFAULT_WINDOW:
            self._outbound += frame(WINDOW_UPDATE, 0, 0, _U32.pack(window - _DEFAULT_WINDOW))
        self.open_streams = 0
        self.goaway: int | None = None  # the server's GOAWAY error code, once it sent one

    def data_to_send(self) -> bytearray:
        """Bytes to write to the socket now (and forget)."""
        outbound, self._outbound = self._outbound, bytearray()
        return outbound

    def start(self, call: Call, tag: int) -> int:
        """Open a stream sending ``call``; its messages and end are reported with ``tag``. Returns its id."""
        if self.goaway is not None:
            raise ConnectionError("the server sent GOAWAY")
        tags = self._tags
        stream_id = 2 * len(tags) + 1
        tags.append(tag)
        self._unacknowledged.append(0)
        self.open_streams += 1
        block, body = call.header_block, call.body
        outbound = self._outbound
        outbound += _FRAME_HEADER.pack(len(block) >> 8, len(block) & 0xFF, HEADERS, END_HEADERS, stream_id)
        outbound += block
        data = _FRAME_HEADER.pack(len(body) >> 8, len(body) & 0xFF, DATA, END_STREAM, stream_id) + body
        # Every request is one DATA frame smaller than any stream's initial window; the connection's is shared.
        if self._blocked or len(body) > self._send_window:
            self._blocked.append(data)
        else:
            self._send_window -= len(body)
            outbound += data
        return stream_id

    def receive(self, data: bytes) -> None:
        """Take bytes read from the socket; raises `ProtocolError` if the server broke HTTP/2."""
        if self._pending:
            data = self._pending + data
        end = len(data)
        offset = 0
        unpack = _FRAME_HEADER.unpack_from
        tags, unacknowledged_of, partial = self._tags, self._unacknowledged, self._partial
        on_message, half_window = self._on_message, self._window >> 1
        while end - offset >= FRAME_HEADER_SIZE:
            high, low, kind, flags, stream_id = unpack(data, offset)
            size = high << 8 | low
            if size > MAX_FRAME_SIZE:
                raise ProtocolError(f"a frame of {size} bytes (at most {MAX_FRAME_SIZE})")
            start = offset + FRAME_HEADER_SIZE
            stop = start + size
            if stop > end:
                break
            offset = stop
            stream_id &= 0x7FFF_FFFF
            if kind != DATA:
                self._on_frame(kind, flags, stream_id, data[start:stop])
                continue
            # DATA, the hot path, inline: usually one whole gRPC message in one frame.
            self._connection_unacknowledged += size
            position = stream_id >> 1
            if not stream_id & 1 or position >= len(tags) or tags[position] == _ENDED:
                continue  # a stream that ended (its data still counts for the connection's window)
            if flags & PADDED:
                start += 1
                stop -= data[start - 1]
            tag = tags[position]
            unacknowledged = unacknowledged_of[position] + size
            if unacknowledged >= half_window:
                self._outbound += frame(WINDOW_UPDATE, 0, stream_id, _U32.pack(unacknowledged))
                unacknowledged = 0
            unacknowledged_of[position] = unacknowledged
            if (
                stop - start >= PREFIX_SIZE
                and _U32.unpack_from(data, start + 1)[0] == stop - start - PREFIX_SIZE
                and (not partial or stream_id not in partial)
            ):
                on_message(tag, data[start + PREFIX_SIZE : stop])
            else:
                self._reassemble(stream_id, tag, data[start:stop])
            if flags & END_STREAM:
                self._end(stream_id, -1, "the stream ended without trailers")
        self._pending = data[offset:]
        if self._connection_unacknowledged >= half_window:
            self._outbound += frame(WINDOW_UPDATE, 0, 0, _U32.pack(self._connection_unacknowledged))
            self._connection_unacknowledged = 0

    def fail_all(self, reason: str) -> None:
        """End every open stream with status -1 (the connection is gone)."""
        for position, tag in enumerate(self._tags):
            if tag != _ENDED:
                self._end(2 * position + 1, -1, reason)

    # Frames other than DATA

    def _on_frame(self, kind: int, flags: int, stream_id: int, payload: bytes) -> None:
        if kind == HEADERS:
            self._on_headers(flags, stream_id, payload)
        elif kind == CONTINUATION:
            block = self._header_block
            if block is None or block.stream_id != stream_id:
                raise ProtocolError("CONTINUATION without the HEADERS it continues")
            block.fragments += payload
            self._check_header_block(block)
            if flags & END_HEADERS:
                self._header_block = None
                if block.ends_stream:
                    self._on_trailers(stream_id, bytes(block.fragments))
        elif self._header_block is not None:
            raise ProtocolError("a header block interrupted by another frame")
        elif kind == SETTINGS:
            if not flags & ACK:
                self._outbound += frame(SETTINGS, ACK, 0)
        elif kind == PING:
            if not flags & ACK:
                self._outbound += frame(PING, ACK, 0, payload)
        elif kind == WINDOW_UPDATE:
            if stream_id == 0:
                self._send_window += _U32.unpack(payload)[0] & 0x7FFF_FFFF
                self._send_blocked()
        elif kind == RST_STREAM:
            self._end(stream_id, -1, f"stream reset by the server (error {_U32.unpack(payload)[0]})")
        elif kind == GOAWAY:
            last_stream_id, self.goaway = struct.unpack_from(">II", payload)
            for position in range((last_stream_id & 0x7FFF_FFFF) // 2 + 1, len(self._tags)):
                self._end(2 * position + 1, -1, f"not served: the server sent GOAWAY (error {self.goaway})")
        elif kind == PUSH_PROMISE:
            raise ProtocolError("PUSH_PROMISE although SETTINGS_ENABLE_PUSH is 0")
        # PRIORITY and unknown frame types are ignored (RFC 9113 5.5).

    def _on_headers(self, flags: int, stream_id: int, payload: bytes) -> None:
        start, stop = 0, len(payload)
        if flags & PADDED:
            start, stop = 1, stop - payload[0]
        if flags & PRIORITY:
            start += 5
        ends_stream = bool(flags & END_STREAM)
        if not flags & END_HEADERS:
            block = _HeaderBlock(stream_id, ends_stream, bytearray(payload[start:stop]))
            self._check_header_block(block)
            self._header_block = block
        elif ends_stream:
            self._on_trailers(stream_id, payload[start:stop])
        # Else the response headers, not read: with a header table of size 0 they change no decoder state.

    def _on_trailers(self, stream_id: int, block: bytes) -> None:
        status, message = -1, "the trailers carry no grpc-status"
        for name, value in self._decoder.decode(block, raw=True):
            if name == b"grpc-status":
                status = int(value)
            elif name == b"grpc-message":
                message = unquote(bytes(value).decode("utf-8", "replace"))
        self._end(stream_id, status, message if status != 0 else "")

    @staticmethod
    def _check_header_block(block: _HeaderBlock) -> None:
        if len(block.fragments) > _MAX_HEADER_BLOCK:
            raise ProtocolError(f"a header block of more than {_MAX_HEADER_BLOCK} bytes")

    def _reassemble(self, stream_id: int, tag: int, data: bytes) -> None:
        buffer = self._partial.pop(stream_id, bytearray())
        buffer += data
        while len(buffer) >= PREFIX_SIZE:
            size = _U32.unpack_from(buffer, 1)[0]
            if size > _MAX_MESSAGE:
                raise ProtocolError(f"a gRPC message of {size} bytes (at most {_MAX_MESSAGE})")
            if len(buffer) < PREFIX_SIZE + size:
                break
            message = bytes(buffer[PREFIX_SIZE : PREFIX_SIZE + size])
            del buffer[: PREFIX_SIZE + size]
            self._on_message(tag, message)
        if buffer:
            self._partial[stream_id] = buffer

    def _send_blocked(self) -> None:
        blocked = self._blocked
        while blocked and len(blocked[0]) - FRAME_HEADER_SIZE <= self._send_window:
            data = blocked.popleft()
            self._send_window -= len(data) - FRAME_HEADER_SIZE
            self._outbound += data

    def _end(self, stream_id: int, status: int, message: str) -> None:
        position = stream_id >> 1
        if not stream_id & 1 or position >= len(self._tags):
            return
        tag = self._tags[position]
        if tag == _ENDED:
            return
        self._tags[position] = _ENDED
        self._partial.pop(stream_id, None)
        self.open_streams -= 1
        self._on_end(tag, status, message)


# --- asyncio ---------------------------------------------------------------------------------------------


class RawChannel(asyncio.Protocol):
    """One connection driving a `ClientConnection`; `connect` opens one."""

    def __init__(self, on_message: OnMessage, on_end: OnEnd) -> None:
        self._connection = ClientConnection(on_message, on_end)
        self._transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @classmethod
    async def connect(cls, address: str, on_message: OnMessage, on_end: OnEnd) -> RawChannel:
        """Open a connection to ``host:port``."""
        host, _, port = address.rpartition(":")
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(lambda: cls(on_message, on_end), host, int(port))
        return protocol

    @property
    def open_streams(self) -> int:
        return self._connection.open_streams

    def start(self, calls: Iterable[tuple[Call, int]]) -> None:
        """Open one stream per (call, tag), all in one write."""
        if self._transport is None:
            raise ConnectionError("the connection is closed")
        for call, tag in calls:
            self._connection.start(call, tag)
        self._flush()

    def close(self) -> None:
        """Close the connection; its open streams end with status -1."""
        if self._transport is not None:
            self._transport.close()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._flush()

    def data_received(self, data: bytes) -> None:
        try:
            self._connection.receive(data)
        except ProtocolError as error:
            self._connection.fail_all(f"protocol error: {error}")
            self.close()
            return
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._connection.fail_all(f"connection lost: {exc}" if exc else "connection closed")
        if not self.closed.done():
            self.closed.set_result(None)

    def _flush(self) -> None:
        outbound = self._connection.data_to_send()
        if outbound and self._transport is not None:
            self._transport.write(outbound)


class UnaryCalls:
    """Unary calls over `RawChannel`\\ s whose handlers are this object's `on_message` and `on_end`."""

    def __init__(self) -> None:
        self._calls: dict[int, tuple[bytearray, asyncio.Future[bytes]]] = {}
        self._next_tag = 0

    async def call_all(self, channel: RawChannel, calls: Sequence[Call]) -> list[bytes]:
        """Send every call at once (one write); their responses, in order. Raises `CallFailed` on a non-OK
        status."""
        loop = asyncio.get_running_loop()
        tags = range(self._next_tag, self._next_tag + len(calls))
        self._next_tag += len(calls)
        futures = []
        for tag in tags:
            future: asyncio.Future[bytes] = loop.create_future()
            self._calls[tag] = (bytearray(), future)
            futures.append(future)
        channel.start(zip(calls, tags, strict=True))
        return list(await asyncio.gather(*futures))

    def on_message(self, tag: int, message: bytes) -> None:
        self._calls[tag][0].extend(message)

    def on_end(self, tag: int, status: int, message: str) -> None:
        response, future = self._calls.pop(tag)
        if future.done():
            return
        if status == 0:
            future.set_result(bytes(response))
        else:
            future.set_exception(CallFailed(status, message))
