"""Delivery: how a subscription's events reach a transport, written once for every transport.

A transport hands core a `Writer` (write a batch of chunks now if it can, or wait until it can) and an `Encoder`
(what each event is on its wire); `TopicCursor.deliver` does the rest: the first heartbeat, the reader loop,
heartbeats, discontinuities, the counters and the end. A cursor parked at the end of its topic whose writer has
shown it can write without waiting is handed new messages by the publish itself (`Delivery.write_published`),
with no task woken per delivery.

Chunks are bytes on a wire (gRPC, SSE, long poll); a webhook's chunks are the events themselves (its writer
builds each POST at delivery time).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, Protocol, TypeVar

from tidings.server.core._events import HEARTBEAT, Discontinuity, Event, Message
from tidings.server.core._stats import TransportStats

Chunk = TypeVar("Chunk")
Chunk_contra = TypeVar("Chunk_contra", contravariant=True)


class Writer(Protocol[Chunk_contra]):
    """Where one subscription's chunks go: a gRPC stream, an SSE body, a long-poll answer, a webhook."""

    def try_write(self, chunks: Sequence[Chunk_contra]) -> bool:
        """Write every one of ``chunks`` now, in order, without waiting; or none of them (False: a window or a
        buffer is full, or this transport cannot write without waiting, as grpc.aio and SSE cannot)."""
        ...

    def write_all(self, chunks: Sequence[Chunk_contra]) -> Awaitable[None]:
        """Write every one of ``chunks``, in order, waiting until the transport can (an awaitable, so that a
        transport may hand back its own send's without a coroutine of its own)."""
        ...


class Encoder(Generic[Chunk]):
    """What each event is on a transport's wire.

    ``message`` encodes once per wire form (it goes through `Message.encoded`, so every subscriber of that
    transport shares the bytes); ``preamble``, when not None, is written first on every stream and counted as a
    heartbeat (gRPC: a heartbeat; SSE: the reconnect delay, then a heartbeat).
    """

    __slots__ = ("discontinuity", "heartbeat", "message", "preamble")

    def __init__(
        self,
        message: Callable[[Message], Chunk],
        discontinuity: Callable[[Discontinuity], Chunk],
        heartbeat: Chunk,
        preamble: Chunk | None = None,
    ) -> None:
        self.message = message
        self.discontinuity = discontinuity
        self.heartbeat = heartbeat
        self.preamble = preamble

    def encode(self, events: Sequence[Event]) -> list[Chunk]:
        """The chunks of a batch of events, in order."""
        message = self.message
        chunks: list[Chunk] = []
        for event in events:
            if type(event) is Message:
                chunks.append(message(event))
            elif event is HEARTBEAT:
                chunks.append(self.heartbeat)
            else:
                chunks.append(self.discontinuity(event))  # type: ignore[arg-type]
        return chunks


class Delivery(Generic[Chunk]):
    """One subscription's writer, with its encoder and the counters it feeds (``stats``: None for a subscriber
    that is not a transport's, such as a webhook)."""

    __slots__ = ("clock", "encoder", "stats", "writer")

    def __init__(
        self,
        writer: Writer[Chunk],
        encoder: Encoder[Chunk],
        stats: TransportStats | None,
        clock: Callable[[], float],
    ) -> None:
        self.writer = writer
        self.encoder = encoder
        self.stats = stats
        self.clock = clock

    def write_heartbeat(self) -> bool:
        """The push path for an idle stream: write a heartbeat now, from the heartbeat ticker, and count it; False
        (nothing written) when the writer cannot take it now."""
        if not self.writer.try_write((self.encoder.heartbeat,)):
            return False
        if self.stats is not None:
            self.stats.heartbeats += 1
        return True

    def write_published(self, messages: Sequence[Message]) -> bool:
        """The push path: write ``messages`` now, from the publish, and count them; False (nothing written) when
        the writer cannot take them all now."""
        encode = self.encoder.message
        if not self.writer.try_write([encode(message) for message in messages]):
            return False
        stats = self.stats
        if stats is not None:
            stats.count_delivered(messages, self.clock())
        return True
