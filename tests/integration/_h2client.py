"""A raw HTTP/2 client on ``h2`` and a blocking socket, for what gRPC clients never send."""

from __future__ import annotations

import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

from tests.integration._server import ServerProcess

GRPC_HEADERS = ((b"content-type", b"application/grpc"), (b"te", b"trailers"))


def grpc_frame(message: bytes, compressed: bool = False) -> bytes:
    """One length-prefixed gRPC message."""
    return bytes([int(compressed)]) + len(message).to_bytes(4, "big") + message


@dataclass
class StreamState:
    """What the server sent on one stream."""

    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    trailers: list[tuple[bytes, bytes]] = field(default_factory=list)
    data: bytearray = field(default_factory=bytearray)
    ended: bool = False
    reset: int | None = None

    @property
    def status(self) -> bytes | None:
        """grpc-status, from the trailers (or Trailers-Only headers)."""
        for name, value in [*self.trailers, *self.headers]:
            if name == b"grpc-status":
                return value
        return None

    def header(self, wanted: bytes) -> bytes | None:
        for name, value in [*self.trailers, *self.headers]:
            if name == wanted:
                return value
        return None

    def messages(self) -> list[bytes]:
        """The gRPC messages in the DATA received so far (whole ones)."""
        found, data = [], bytes(self.data)
        while len(data) >= 5:
            length = int.from_bytes(data[1:5], "big")
            if len(data) < 5 + length:
                break
            found.append(data[5 : 5 + length])
            data = data[5 + length :]
        return found


class _UncountedStreams(h2.connection.H2Connection):
    """h2's client state machine without its check of the server's stream limit (it walks every stream at each
    new one, which for thousands of streams is slower than the test; a hostile client ignores the limit anyway)."""

    @property
    def open_outbound_streams(self) -> int:
        return 0


class RawH2Client:
    """An HTTP/2 client connection with manual flow control (``auto_ack=False``: windows open only when asked)."""

    def __init__(
        self,
        server: ServerProcess,
        initial_window: int | None = None,
        timeout: float = 10.0,
        settings: dict[h2.settings.SettingCodes, int] | None = None,
        source: str | None = None,
    ) -> None:
        source_address = (source, 0) if source is not None else None
        self.sock = socket.create_connection((server.host, server.port), timeout=timeout, source_address=source_address)
        self.h2 = _UncountedStreams(h2.config.H2Configuration(client_side=True, header_encoding=None))
        self.h2.initiate_connection()
        values: dict[h2.settings.SettingCodes | int, int] = {code: value for code, value in (settings or {}).items()}
        if initial_window is not None:
            values[h2.settings.SettingCodes.INITIAL_WINDOW_SIZE] = initial_window
        if values:
            self.h2.update_settings(values)
        self.streams: dict[int, StreamState] = {}
        self.terminated: h2.events.ConnectionTerminated | None = None
        self.pings_acked = 0
        self.pings_received = 0  # answered automatically by h2 (the ack leaves with the next flush)
        self.closed = False
        self.flush()

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data:
            self.sock.sendall(data)

    def start_call(self, path: str, extra: Sequence[tuple[bytes, bytes]] = GRPC_HEADERS, flush: bool = True) -> int:
        """Send request headers for ``path`` (now, or with the next flush); returns the stream id."""
        stream_id = self.h2.get_next_available_stream_id()
        headers = [(b":method", b"POST"), (b":scheme", b"http"), (b":path", path.encode()), (b":authority", b"t")]
        self.h2.send_headers(stream_id, [*headers, *extra])
        self.streams[stream_id] = StreamState()
        if flush:
            self.flush()
        return stream_id

    def start_calls(self, path: str, count: int, extra: Sequence[tuple[bytes, bytes]] = GRPC_HEADERS) -> list[int]:
        """Send the headers of ``count`` requests for ``path`` at once; their stream ids."""
        stream_ids = [self.start_call(path, extra, flush=False) for _ in range(count)]
        self.flush()
        return stream_ids

    def send_bodies(self, stream_ids: Sequence[int], size: int, patience: float = 1.0) -> int:
        """Send ``size`` bytes of body on each stream, never ending it, as fast as the windows allow (a client that
        respects flow control, and reads what the server sends meanwhile); stop when every stream has them or
        was reset, or when no window has opened for ``patience`` seconds. Returns the bytes sent."""
        remaining = dict.fromkeys(stream_ids, size)
        sent = 0
        stalled_since = time.monotonic()
        while remaining and not self.closed and time.monotonic() - stalled_since < patience:
            progress = 0
            for stream_id, left in list(remaining.items()):
                chunk = min(left, self.h2.local_flow_control_window(stream_id), self.h2.max_outbound_frame_size)
                if self.streams[stream_id].reset is not None or chunk <= 0:
                    if self.streams[stream_id].reset is not None:
                        del remaining[stream_id]
                    continue
                try:
                    self.h2.send_data(stream_id, b"x" * chunk)
                except h2.exceptions.StreamClosedError:
                    del remaining[stream_id]
                    continue
                progress += chunk
                remaining[stream_id] = left - chunk
                if remaining[stream_id] == 0:
                    del remaining[stream_id]
            try:
                self.flush()
            except OSError:  # closed by the server
                self.closed = True
                break
            sent += progress
            if progress:
                stalled_since = time.monotonic()
            self._receive_for(0.05)
        return sent

    def _receive_for(self, seconds: float) -> None:
        """`receive` once, waiting at most ``seconds`` for something to arrive."""
        timeout = self.sock.gettimeout()
        self.sock.settimeout(seconds)
        try:
            self.receive()
        except TimeoutError:
            pass
        except OSError:  # reset by the server
            self.closed = True
        finally:
            self.sock.settimeout(timeout)

    def call(self, path: str, message: bytes, extra: Sequence[tuple[bytes, bytes]] = GRPC_HEADERS) -> int:
        """A whole unary request (headers, one message, end of stream)."""
        stream_id = self.start_call(path, extra)
        self.h2.send_data(stream_id, grpc_frame(message), end_stream=True)
        self.flush()
        return stream_id

    def receive(self) -> None:
        """Read once from the socket and apply what arrived (sets ``closed`` at end of file)."""
        try:
            data = self.sock.recv(1 << 20)
        except ConnectionResetError:  # closed by the server with data of ours unread
            data = b""
        if not data:
            self.closed = True
            return
        for event in self.h2.receive_data(data):
            stream = self.streams.get(getattr(event, "stream_id", 0) or 0)
            if isinstance(event, h2.events.ResponseReceived) and stream:
                stream.headers = list(event.headers)
            elif isinstance(event, h2.events.TrailersReceived) and stream:
                stream.trailers = list(event.headers)
            elif isinstance(event, h2.events.DataReceived) and stream:
                stream.data += event.data or b""
            elif isinstance(event, h2.events.StreamEnded) and stream:
                stream.ended = True
            elif isinstance(event, h2.events.StreamReset) and stream:
                stream.reset = int(event.error_code or 0)
            elif isinstance(event, h2.events.ConnectionTerminated):
                self.terminated = event
            elif isinstance(event, h2.events.PingAckReceived):
                self.pings_acked += 1
            elif isinstance(event, h2.events.PingReceived):
                self.pings_received += 1
        self.flush()

    def receive_until(self, done: object, limit: int = 10_000) -> None:
        """Receive until ``done()`` is true (a callable), the connection closes, or the socket times out."""
        for _ in range(limit):
            if done() or self.closed:  # type: ignore[operator]
                return
            self.receive()
        raise AssertionError("condition not reached")

    def wait_end(self, stream_id: int) -> StreamState:
        """Receive until the stream ended or was reset."""
        stream = self.streams[stream_id]
        self.receive_until(lambda: stream.ended or stream.reset is not None)
        return stream

    def close(self) -> None:
        self.sock.close()
