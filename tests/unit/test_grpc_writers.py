"""The writers gRPC calls hand the core: grpc.aio's never writes without waiting and awaits one ``write`` per
message; a grpc.aio streaming behaviour gets its call as an `AioStream`."""

from __future__ import annotations

from typing import Any

import grpc

from tidings.server.grpc._context import AioStream, ContextWriter, aio_handlers


class RecordingContext:
    """The part of grpc.aio's ``ServicerContext`` a writer uses."""

    def __init__(self) -> None:
        self.written: list[bytes] = []

    async def write(self, message: bytes) -> None:
        self.written.append(message)

    def invocation_metadata(self) -> list[tuple[str, str]]:
        return [("authorization", "token")]

    def peer(self) -> str:
        return "ipv4:127.0.0.1:5000"


async def test_context_writer_never_writes_without_waiting_and_writes_each_message_in_order() -> None:
    # Arrange
    context = RecordingContext()
    writer = ContextWriter(context)  # type: ignore[arg-type]

    # Act
    refused = writer.try_write([b"a"])
    await writer.write_all([b"one"])
    await writer.write_all([b"two", b"three"])

    # Assert
    assert refused is False
    assert context.written == [b"one", b"two", b"three"]


async def test_aio_handlers_hand_streaming_behaviours_an_aio_stream_and_leave_the_others() -> None:
    # Arrange
    seen: list[Any] = []

    async def stream(request: bytes, context: Any) -> None:
        seen.append(context)
        await context.writer().write_all([request])

    async def unary(request: bytes, context: Any) -> bytes:
        return request

    unary_handler = grpc.unary_unary_rpc_method_handler(unary)
    handlers = {"Stream": grpc.unary_stream_rpc_method_handler(stream), "Unary": unary_handler}
    context = RecordingContext()

    # Act
    adapted = aio_handlers(handlers)
    behaviour: Any = adapted["Stream"].unary_stream
    await behaviour(b"item", context)

    # Assert: the streaming call wrote through grpc.aio's write; the unary handler is the same one.
    assert isinstance(seen[0], AioStream)
    assert (seen[0].peer(), seen[0].invocation_metadata()) == (context.peer(), context.invocation_metadata())
    assert context.written == [b"item"]
    assert adapted["Unary"] is unary_handler
