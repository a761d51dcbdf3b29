"""What the servicers need of a call, whichever transport carries it.

grpc.aio's ``ServicerContext`` satisfies `CallContext` as it is (no wrapper on that path); the h2 transport's
call object implements the same five things. ``abort`` ends the call with a status and raises: grpc.aio raises
its ``AbortError``, the h2 transport `CallAborted`; `ABORTS` names both for code that must let them through.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final, NoReturn, Protocol

import grpc
import grpc.aio

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


class DirectWrites(Protocol):
    """A transport that can queue response messages without waiting (the h2 transport; grpc.aio cannot)."""

    def try_write_all(self, messages: Sequence[bytes]) -> bool:
        """Queue every one of ``messages`` now (True), or none of them (False: a window or the socket is full)."""
        ...


def direct_writer(context: CallContext) -> Callable[[Sequence[bytes]], bool] | None:
    """``context``'s `DirectWrites.try_write_all`, or None on a transport without one."""
    return getattr(context, "try_write_all", None)


class CallAborted(Exception):
    """Raised by the h2 transport's ``abort`` once the call's status is on its way to the client."""


ABORTS: Final = (grpc.aio.AbortError, CallAborted)
