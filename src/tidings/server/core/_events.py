"""What a subscription delivers: messages, discontinuities and heartbeats."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, NamedTuple, Protocol


class Retainer(Protocol):
    """What holds a retained message: told when the message grows (a transport cached an encoding on it)."""

    def grew(self, extra_bytes: int) -> None:
        """Count ``extra_bytes`` more for a message this retainer holds."""
        ...


class Message:
    """One published message of a topic instance, shared by every subscriber that delivers it.

    ``encodings`` lets each transport cache its wire encoding on the message, so a message is serialized
    once per transport however many subscribers receive it. ``footprint`` is what retention counts for it:
    its value's size plus every encoding cached on it, and its ``retainer`` (the retention buffer holding it)
    is told when an encoding adds to it, so retention bounds the memory messages really hold.
    """

    __slots__ = (
        "encodings",
        "footprint",
        "published_at",
        "publisher_id",
        "retainer",
        "sequence_number",
        "sequence_page",
        "size",
        "value",
    )

    def __init__(
        self,
        sequence_page: int,
        sequence_number: int,
        value: str | bytes,
        publisher_id: str,
        size: int,
        published_at: float = 0.0,
    ) -> None:
        self.sequence_page = sequence_page
        self.sequence_number = sequence_number
        self.value = value
        self.publisher_id = publisher_id
        self.size = size
        # The service clock's reading when it was published (for publish-to-deliver latency).
        self.published_at = published_at
        self.encodings: dict[str, bytes] | None = None
        self.footprint = size
        self.retainer: Retainer | None = None

    def encoded(self, transport: str, encode: Callable[[Message], bytes]) -> bytes:
        """This message's wire form for ``transport``, made by ``encode`` the first time it is asked for."""
        encodings = self.encodings
        if encodings is None:
            encodings = self.encodings = {}
        else:
            cached = encodings.get(transport)
            if cached is not None:
                return cached
        data = encodings[transport] = encode(self)
        grown = len(data)
        self.footprint += grown
        retainer = self.retainer
        if retainer is not None:
            retainer.grew(grown)
        return data

    def __repr__(self) -> str:
        return f"Message(page={self.sequence_page}, seq={self.sequence_number}, value={self.value!r:.40})"


class Discontinuity(NamedTuple):
    """A gap in a subscription (PROTOCOL.md *Discontinuity fields*).

    The next message delivered has ``new_topic_sequence + 1`` in page ``new_sequence_page``.
    """

    last_topic_sequence: int
    new_topic_sequence: int
    new_sequence_page: int


class Heartbeat:
    """The stream is alive; sent first on every stream and while a stream is otherwise idle."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "HEARTBEAT"


HEARTBEAT: Final = Heartbeat()

Event = Message | Discontinuity | Heartbeat
