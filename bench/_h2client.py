"""A lean gRPC client for the load generator (``--client h2``): asyncio + ``h2``, no grpc-core.

grpc.aio's client reads each stream on its own: a message crosses grpc-core's poller threads and wakes one
coroutine per stream, so when a publish reaches 50 streams of one process at once the last of them is read
milliseconds after its bytes arrived, on a machine the server shares. That is the client's latency, not the
server's. Here a connection is one `asyncio.Protocol`: everything one read brings (the DATA frames of every
stream the server wrote in that loop turn) is handed to the streams' handlers in that call, all stamped with the
time the read returned, before any is decoded.

What it does of gRPC: unary calls (one request, one response) and server-streaming calls, identity-encoded
messages with the 5-byte prefix, the status from the trailers (or a Trailers-Only response). What it does of
HTTP/2 is ``h2``'s: flow control (received data is acknowledged as it is handed over), SETTINGS and PING acks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, cast

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings

_CONFIG: Final = h2.config.H2Configuration(client_side=True, header_encoding=None, validate_inbound_headers=False)
_WINDOW: Final = 16 << 20  # per stream and per connection: the server never waits for a WINDOW_UPDATE here
_PREFIX: Final = 5

# A streaming call's handler: (time the read returned in monotonic ns, the message's bytes).
OnMessage = Callable[[int, bytes], None]
# Called once when a call ends: its grpc-status (0 = OK; -1 when the stream or connection broke) and message.
OnEnd = Callable[[int, str], None]


class CallFailed(RuntimeError):
    """A unary call ended with a non-OK status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"grpc-status {status}: {message}")
        self.status = status


@dataclass(eq=False, slots=True)
class _Stream:
    on_message: OnMessage
    on_end: OnEnd
    buffer: bytearray = field(default_factory=bytearray)
    status: int | None = None
    message: str = ""
    ended: bool = False

    def end(self, status: int, message: str) -> None:
        if not self.ended:
            self.ended = True
            self.on_end(status, message)


class H2Channel(asyncio.Protocol):
    """One HTTP/2 connection carrying gRPC calls; `connect` opens one."""

    def __init__(self, authority: str) -> None:
        self._authority = authority.encode()
        self._h2 = h2.connection.H2Connection(_CONFIG)
        self._transport: asyncio.Transport | None = None
        self._streams: dict[int, _Stream] = {}
        self._flush_scheduled = False
        self._loop = asyncio.get_running_loop()
        self.closed = self._loop.create_future()

    @classmethod
    async def connect(cls, address: str) -> H2Channel:
        """Open a connection to ``host:port``."""
        host, _, port = address.rpartition(":")
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(lambda: cls(address), host, int(port))
        return protocol

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        connection = self._h2
        connection.local_settings = h2.settings.Settings(
            client=True, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: _WINDOW}
        )
        connection.initiate_connection()
        connection.increment_flow_control_window(_WINDOW - 65_535)
        self._flush()

    def data_received(self, data: bytes) -> None:
        now_ns = time.monotonic_ns()  # one clock for every process: the publish stamps come from another
        connection = self._h2
        for event in connection.receive_data(data):
            kind = type(event)
            if kind is h2.events.DataReceived:
                self._on_data(now_ns, event)  # type: ignore[arg-type]
            elif kind is h2.events.ResponseReceived or kind is h2.events.TrailersReceived:
                self._on_headers(event)  # type: ignore[arg-type]
            elif kind is h2.events.StreamEnded:
                stream = self._streams.pop(event.stream_id, None)  # type: ignore[attr-defined]
                if stream is not None:
                    status = -1 if stream.status is None else stream.status
                    stream.end(status, stream.message or "the stream ended without a grpc-status")
            elif kind is h2.events.StreamReset:
                stream = self._streams.pop(event.stream_id, None)  # type: ignore[attr-defined]
                if stream is not None:
                    stream.end(-1, f"stream reset by the server ({event.error_code!r})")  # type: ignore[attr-defined]
            elif kind is h2.events.ConnectionTerminated:
                self._fail_all("the server sent GOAWAY")
        self._schedule_flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._fail_all(f"connection lost: {exc}" if exc else "connection closed")
        if not self.closed.done():
            self.closed.set_result(None)

    # Calls

    def start_call(
        self, path: str, request: bytes, metadata: Sequence[tuple[str, str]], on_message: OnMessage, on_end: OnEnd
    ) -> int:
        """Send a call's request; ``on_message`` gets each response message, ``on_end`` its status. Returns
        the stream id (for `cancel`)."""
        if self._transport is None:
            raise ConnectionError("the connection is closed")
        connection = self._h2
        stream_id = connection.get_next_available_stream_id()
        headers = [
            (b":method", b"POST"),
            (b":scheme", b"http"),
            (b":path", path.encode()),
            (b":authority", self._authority),
            (b"content-type", b"application/grpc"),
            (b"te", b"trailers"),
            *((name.encode(), value.encode()) for name, value in metadata),
        ]
        connection.send_headers(stream_id, headers)
        connection.send_data(stream_id, b"\0" + len(request).to_bytes(4) + request, end_stream=True)
        self._streams[stream_id] = _Stream(on_message, on_end)
        self._schedule_flush()
        return stream_id

    async def unary(self, path: str, request: bytes, metadata: Sequence[tuple[str, str]]) -> bytes:
        """One request, one response; raises `CallFailed` on a non-OK status."""
        done: asyncio.Future[bytes] = self._loop.create_future()
        response = bytearray()

        def on_message(now_ns: int, message: bytes) -> None:
            response.extend(message)

        def on_end(status: int, message: str) -> None:
            if not done.done():
                if status == 0:
                    done.set_result(bytes(response))
                else:
                    done.set_exception(CallFailed(status, message))

        self.start_call(path, request, metadata, on_message, on_end)
        return await done

    def cancel(self, stream_id: int) -> None:
        """Reset a call's stream (CANCEL); its ``on_end`` is not called."""
        stream = self._streams.pop(stream_id, None)
        if stream is not None and self._transport is not None:
            stream.ended = True
            self._h2.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
            self._schedule_flush()

    def close(self) -> None:
        """Close the connection; its open calls are dropped (their ``on_end`` is not called)."""
        self._streams.clear()
        if self._transport is not None:
            self._transport.close()

    # Frames

    def _on_data(self, now_ns: int, event: h2.events.DataReceived) -> None:
        stream_id = event.stream_id
        self._h2.acknowledge_received_data(event.flow_controlled_length, stream_id)
        stream = self._streams.get(stream_id)
        if stream is None:
            return
        data = event.data
        buffer = stream.buffer
        if not buffer and len(data) >= _PREFIX and int.from_bytes(data[1:_PREFIX]) == len(data) - _PREFIX:
            stream.on_message(now_ns, data[_PREFIX:])  # the usual case: one whole message per DATA frame
            return
        buffer += data
        while len(buffer) >= _PREFIX:
            size = int.from_bytes(buffer[1:_PREFIX])
            if len(buffer) < _PREFIX + size:
                break
            message = bytes(buffer[_PREFIX : _PREFIX + size])
            del buffer[: _PREFIX + size]
            stream.on_message(now_ns, message)

    def _on_headers(self, event: h2.events.ResponseReceived | h2.events.TrailersReceived) -> None:
        stream = self._streams.get(event.stream_id)
        if stream is None:
            return
        for name, value in event.headers:
            if name == b"grpc-status":
                stream.status = int(value)
            elif name == b"grpc-message":
                stream.message = bytes(value).decode("utf-8", "replace")

    def _fail_all(self, reason: str) -> None:
        streams, self._streams = self._streams, {}
        for stream in streams.values():
            stream.end(-1, reason)

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        data = self._h2.data_to_send()
        if data and self._transport is not None:
            self._transport.write(data)
