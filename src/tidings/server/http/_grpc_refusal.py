"""A gRPC client on the HTTP port is answered in gRPC: every call it makes ends with ``UNIMPLEMENTED`` and a
message naming the gRPC port, then the connection goes away (sans-IO: bytes in, bytes out).

Closing the connection at the client's HTTP/2 preface, as before, left every gRPC client with
``UNAVAILABLE: Socket closed``, which says nothing about the port. A status with a message reaches whoever made
the call — tidings' CLI and SDK, the official Momento SDKs, grpcurl — as the call's error. ``UNIMPLEMENTED`` is
what a gRPC server answers for a method it does not serve (none is served here) and, unlike ``UNAVAILABLE``, no
client retries it.
"""

from __future__ import annotations

import contextlib
from typing import Final

import h2.config
import h2.connection
import h2.events
import h2.exceptions

from tidings.server.grpc._framing import encode_grpc_message

GRPC_UNIMPLEMENTED: Final = 12
# Past this much input without a call to answer, the peer is not a gRPC client worth waiting for.
MAX_INPUT: Final = 64 * 1024


class GrpcRefusal:
    """The server side of an HTTP/2 connection that answers each gRPC call with ``UNIMPLEMENTED`` and
    ``message``, then says goodbye (GOAWAY). Feed it what the client sends; write what it returns."""

    def __init__(self, message: str) -> None:
        self._h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding=None, validate_inbound_headers=False)
        )
        self._h2.initiate_connection()
        self._trailers = [
            (b":status", b"200"),
            (b"content-type", b"application/grpc"),
            (b"grpc-status", str(GRPC_UNIMPLEMENTED).encode()),
            (b"grpc-message", encode_grpc_message(message)),
        ]
        self._received = 0
        self.finished = False
        """Whether the conversation is over: a call was answered (and GOAWAY sent), or the client is not one
        to answer; close the connection after writing what `receive` returned."""

    def receive(self, data: bytes) -> bytes:
        """Take ``data`` from the client; return the bytes to send it (the first call's include the server's
        preface)."""
        if self.finished:
            return b""
        self._received += len(data)
        try:
            events = self._h2.receive_data(data)
        except h2.exceptions.ProtocolError:
            self.finished = True
            return self._h2.data_to_send()
        answered = False
        for event in events:
            if isinstance(event, h2.events.RequestReceived) and event.stream_id is not None:
                with contextlib.suppress(h2.exceptions.StreamClosedError):  # reset by the client meanwhile
                    self._h2.send_headers(event.stream_id, self._trailers, end_stream=True)
                answered = True
            elif isinstance(event, h2.events.ConnectionTerminated):
                self.finished = True
                return self._h2.data_to_send()
        if answered:
            self._h2.close_connection()  # GOAWAY: calls it makes from now on go to a new connection
        self.finished = answered or self._received > MAX_INPUT
        return self._h2.data_to_send()
