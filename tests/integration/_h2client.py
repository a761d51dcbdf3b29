"""A raw HTTP/2 client on ``h2`` and a blocking socket, for what gRPC clients never send."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
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


class RawH2Client:
    """An HTTP/2 client connection with manual flow control (``auto_ack=False``: windows open only when asked)."""

    def __init__(
        self,
        server: ServerProcess,
        initial_window: int | None = None,
        timeout: float = 10.0,
        settings: dict[h2.settings.SettingCodes, int] | None = None,
    ) -> None:
        self.sock = socket.create_connection((server.host, server.port), timeout=timeout)
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        self.h2.initiate_connection()
        values = dict(settings or {})
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

    def start_call(self, path: str, extra: Sequence[tuple[bytes, bytes]] = GRPC_HEADERS) -> int:
        """Send request headers for ``path``; returns the stream id."""
        stream_id = self.h2.get_next_available_stream_id()
        headers = [(b":method", b"POST"), (b":scheme", b"http"), (b":path", path.encode()), (b":authority", b"t")]
        self.h2.send_headers(stream_id, [*headers, *extra])
        self.streams[stream_id] = StreamState()
        self.flush()
        return stream_id

    def call(self, path: str, message: bytes, extra: Sequence[tuple[bytes, bytes]] = GRPC_HEADERS) -> int:
        """A whole unary request (headers, one message, end of stream)."""
        stream_id = self.start_call(path, extra)
        self.h2.send_data(stream_id, grpc_frame(message), end_stream=True)
        self.flush()
        return stream_id

    def receive(self) -> None:
        """Read once from the socket and apply what arrived (sets ``closed`` at end of file)."""
        data = self.sock.recv(1 << 20)
        if not data:
            self.closed = True
            return
        for event in self.h2.receive_data(data):
            stream = self.streams.get(getattr(event, "stream_id", 0) or 0)
            if isinstance(event, h2.events.ResponseReceived) and stream:
                stream.headers = list(event.headers)  # type: ignore[arg-type]
            elif isinstance(event, h2.events.TrailersReceived) and stream:
                stream.trailers = list(event.headers)  # type: ignore[arg-type]
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
