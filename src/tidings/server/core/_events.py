"""What a subscription delivers: messages, discontinuities and heartbeats."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, NamedTuple, Protocol


class Retainer(Protocol):
    """What holds a retained message: asked before an encoding is cached on it, so that it can count it."""

    def admit_encoding(self, message: Message, size: int) -> bool:
        """Count an encoding of ``size`` bytes for ``message``, which this retainer holds, making room for it.

        False when the encoding must not be cached: the retainer already dropped ``message``'s encodings to
        stay within its bounds, so one made again is served once and not kept.
        """
        ...


class Message:
    """One published message of a topic instance, shared by every subscriber that delivers it.

    ``encodings`` lets each transport cache its wire encoding on the message, so a message is serialized
    once per transport however many subscribers receive it. ``footprint`` is what retention counts for it:
    its value's size plus every encoding cached on it. Every encoding is cached through `encoded`, which
    asks the message's ``retainer`` (the retention buffer holding it) to admit it first, so retention bounds
    the memory messages really hold; the retainer may later drop them (``encodings`` back to None).
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
        """This message's wire form for ``transport``, made by ``encode`` the first time it is asked for.

        The one way to cache an encoding on a message: it is counted by the retainer, which may refuse it (then
        it is made again for each delivery). A message no retainer holds (evicted while a subscriber sends it)
        caches it uncounted: the subscribers sending it hold the last references.
        """
        encodings = self.encodings
        if encodings is not None:
            cached = encodings.get(transport)
            if cached is not None:
                return cached
        data = encode(self)
        size = len(data)
        retainer = self.retainer
        if retainer is None or retainer.admit_encoding(self, size):
            encodings = self.encodings  # read again: ``encode`` may have cached another form it builds on
            if encodings is None:
                encodings = self.encodings = {}
            encodings[transport] = data
            self.footprint += size
        return data

    def __repr__(self) -> str:
        return f"Message(page={self.sequence_page}, seq={self.sequence_number}, value={self.value!r:.40})"


class Discontinuity(NamedTuple):
    """A gap in a subscription (README *Subscriptions, resume and discontinuities*).

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
