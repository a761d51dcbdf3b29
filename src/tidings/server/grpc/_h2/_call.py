"""One gRPC call on an h2 connection: the servicer's `StreamContext`, and the `Writer` its subscription delivers
to."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn, Protocol

import grpc

from tidings.server.grpc._context import CallAborted, Metadata

if TYPE_CHECKING:
    from h2.stream import H2Stream

    from tidings.server.grpc._h2._head import RequestHead


class CallConnection(Protocol):
    """What a call needs of its connection (`_connection.H2Connection`, which makes calls: hence a protocol
    rather than an import of it)."""

    def try_send(self, call: H2Call, messages: Sequence[bytes]) -> bool:
        """Queue ``messages`` on ``call``'s stream now, or none of them (False)."""
        ...

    def try_send_one(self, call: H2Call, message: bytes) -> bool:
        """`try_send` for one message: queue it now, or not (False)."""
        ...

    async def send_message(self, call: H2Call, message: bytes) -> None:
        """Send ``message`` on ``call``'s stream, waiting for the windows."""
        ...

    def end_call(self, call: H2Call, code: grpc.StatusCode, details: str, trailing_metadata: Metadata = ()) -> None:
        """Send ``call``'s status and forget the call."""
        ...

    def peer(self) -> str:
        """The client's address as grpcio writes it."""
        ...


class H2Call:
    """A call's request (headers, body) and response state; `write`, `abort`, `invocation_metadata`, `peer` and
    `writer` are what servicers use (`StreamContext`).

    It is its own `Writer`: the core writes a subscription's messages with `try_write` (from the publish itself,
    when the windows are open) or `write_all`.
    """

    __slots__ = (
        "_connection",
        "_head",
        "body",
        "cost",
        "deadline",
        "ended",
        "h2_stream",
        "headers_sent",
        "path",
        "received",
        "received_at",
        "stream_id",
        "task",
        "window_waiter",
    )

    def __init__(self, connection: CallConnection, stream_id: int, head: RequestHead) -> None:
        self._connection = connection
        self.stream_id = stream_id
        self.path = head.path
        self._head = head
        self.body = bytearray()
        # While the request arrives: when its HEADERS came, what it holds of the connection's request budget
        # (headers and overhead), and the flow-controlled bytes of its body received (given back when it is whole).
        self.received_at = 0.0
        self.cost = 0
        self.received = 0
        self.deadline: float | None = None
        self.headers_sent = False
        self.h2_stream: H2Stream | None = None  # h2's stream, once response headers went out
        self.ended = False
        self.task: asyncio.Task[None] | None = None
        self.window_waiter: asyncio.Future[None] | None = None

    def invocation_metadata(self) -> Metadata:
        """The request's metadata, decoded on first use (once for all the calls that share its head)."""
        return self._head.metadata()

    async def write(self, message: bytes) -> None:
        """Send ``message`` (5-byte prefix) as DATA on this stream; waits while a window is closed."""
        if not self._connection.try_send_one(self, message):
            await self._connection.send_message(self, message)

    def writer(self) -> H2Call:
        """This call: it writes its own response messages (`try_write`, `write_all`)."""
        return self

    def try_write(self, chunks: Sequence[bytes]) -> bool:
        """Queue all of ``chunks`` (response messages) now, or none (False: a window or the socket buffer is full,
        or the response headers are not sent yet). One chunk (a heartbeat from the ticker, one message from the
        publish: the most frequent writes) takes `try_send_one`, with no pass over a batch."""
        if len(chunks) == 1:
            return self._connection.try_send_one(self, chunks[0])
        return self._connection.try_send(self, chunks)

    async def write_all(self, chunks: Sequence[bytes]) -> None:
        """Send ``chunks`` (response messages) in order, waiting for the windows."""
        connection = self._connection
        if not connection.try_send(self, chunks):
            for chunk in chunks:
                await connection.send_message(self, chunk)

    def peer(self) -> str:
        """The client's address, as grpcio's ``ServicerContext.peer`` gives it (for the log)."""
        return self._connection.peer()

    async def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata: Metadata = ()) -> NoReturn:
        """End the call with ``code`` (Trailers-Only when nothing was sent yet) and raise `CallAborted`."""
        self._connection.end_call(self, code, details, trailing_metadata)
        raise CallAborted(code, details)
