"""What the servicers need of a call, whichever transport carries it.

grpc.aio's ``ServicerContext`` satisfies `CallContext` as it is (no wrapper on that path); the h2 transport's
call object implements the same things. A server-streaming call is a `StreamContext`: it also hands the core the
`Writer` its subscription delivers to. The h2 call is its own writer; a grpc.aio streaming call is wrapped in
`AioStream` (`aio_handlers`), whose writer awaits grpc.aio's ``write`` for each message. ``abort`` ends the call
with a status and raises: grpc.aio raises its ``AbortError``, the h2 transport `CallAborted`; `ABORTS` names both
for code that must let them through.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Any, Final, NoReturn, Protocol

import grpc
import grpc.aio

from tidings.server.core import Writer

Metadata = Sequence[tuple[str, str | bytes]]


class CallContext(Protocol):
    """The servicer's view of one call: its request metadata, the response stream, and how to end it."""

    def invocation_metadata(self) -> Metadata | None:
        """The request's metadata (custom headers), as (lower-case key, value) pairs."""
        ...

    async def write(self, message: bytes) -> None:
        """Send one response message of a server-streaming call (waits while the client's window is closed)."""
        ...

    async def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata: Metadata = ()) -> NoReturn:
        """End the call with ``code``, ``details`` and trailing metadata; raises."""
        ...

    def peer(self) -> str:
        """The client's address as gRPC writes it (``ipv4:127.0.0.1:5000``), for the log."""
        ...


class StreamContext(CallContext, Protocol):
    """A server-streaming call: a `CallContext` with the writer its subscription delivers to."""

    def writer(self) -> Writer[bytes]:
        """Where the core writes this call's response messages."""
        ...


class ContextWriter:
    """The `Writer` of a call that can only await each message's ``write`` (grpc.aio): it never writes without
    waiting, so its subscription is always delivered by its reader."""

    __slots__ = ("_write",)

    def __init__(self, context: CallContext) -> None:
        self._write = context.write

    def try_write(self, chunks: Sequence[bytes]) -> bool:
        """Never: grpc.aio's ``write`` must be awaited."""
        return False

    def write_all(self, chunks: Sequence[bytes]) -> Awaitable[None]:
        """``write`` each message in turn (a single one's own awaitable, without a coroutine around it)."""
        if len(chunks) == 1:
            return self._write(chunks[0])
        return self._write_each(chunks)

    async def _write_each(self, chunks: Sequence[bytes]) -> None:
        write = self._write
        for chunk in chunks:
            await write(chunk)


class AioStream:
    """A grpc.aio server-streaming call as a `StreamContext`: its context, with a `ContextWriter`."""

    __slots__ = ("_context",)

    def __init__(self, context: CallContext) -> None:
        self._context = context

    def invocation_metadata(self) -> Metadata | None:
        return self._context.invocation_metadata()

    async def write(self, message: bytes) -> None:
        await self._context.write(message)

    async def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata: Metadata = ()) -> NoReturn:
        await self._context.abort(code, details, trailing_metadata)

    def peer(self) -> str:
        return self._context.peer()

    def writer(self) -> Writer[bytes]:
        return ContextWriter(self._context)


def aio_handlers(handlers: dict[str, grpc.RpcMethodHandler[Any, Any]]) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
    """``handlers`` for grpc.aio: each server-streaming behaviour gets its call as an `AioStream`."""
    adapted = dict(handlers)
    for name, handler in handlers.items():
        behaviour = handler.unary_stream
        if behaviour is not None:

            async def stream(request: Any, context: CallContext, behaviour: Any = behaviour) -> None:
                await behaviour(request, AioStream(context))

            adapted[name] = grpc.unary_stream_rpc_method_handler(
                stream,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
    return adapted


class CallAborted(Exception):
    """Raised by the h2 transport's ``abort`` once the call's status is on its way to the client."""


ABORTS: Final = (grpc.aio.AbortError, CallAborted)
