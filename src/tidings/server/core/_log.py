"""Topic logs: the retained messages of each topic instance this process holds, which subscriptions read with
their cursors, and the retention budget they share. Engines append to them (the memory engine at publish, the
Redis engine as its mirror of the topic's stream); reading them is plain data access, never a suspension.

Retention counts what a message holds: its value and the wire encodings transports cache on it (a message
read over gRPC, the long poll and SSE holds about four copies of its value). A topic's buffer keeps its bytes
within ``--retention-size``; a `RetentionBudget` keeps all buffers together within ``--max-retained-bytes``.

Encodings can be made again, messages cannot: how far back a subscriber can resume depends on the values
published, never on which transports read them. Over its bound, a buffer first drops the encodings cached on
its oldest messages, and drops messages only while their values alone are over it; the budget likewise drops
encodings (of the topics that cached them longest ago first) before it empties the buffers of the topics
published to least recently. A message whose encodings were dropped is *bare*: an encoding made again for it
(a subscriber resuming far back) is sent and not kept, so eviction stays one cursor moving forward. An
encoding that does not fit even once every older one is dropped (the newest message's, when values fill the
bound) is kept, over the bound, only until the event loop has run what the publish made ready, so that the
subscribers it woke share it; then the buffer settles and drops it. Like a message a subscriber is sending
right now, it is memory in flight, not what retention keeps.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable

from tidings.server.core._events import Message

# Schedules a callback to run later, never at once: when a buffer settles what it held over its bounds.
Defer = Callable[[Callable[[], None]], object]


def after_ready(callback: Callable[[], None]) -> None:
    """Run ``callback`` once the running loop has run every callback ready now (the default `Defer`).

    Two hops: a subscriber a publish wakes after the first encoding was made is scheduled after the first hop,
    and the loop runs, in one pass, only what was ready when the pass began; so its read comes first.
    """
    loop = asyncio.get_running_loop()
    loop.call_soon(loop.call_soon, callback)


class RetentionBudget:
    """The bytes every retention buffer of a process holds together, kept within ``max_bytes``."""

    __slots__ = ("_encoded", "_logs", "max_bytes", "trimmed_bytes", "used_bytes")

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 1:
            raise ValueError("max_bytes must be positive")
        self.max_bytes = max_bytes
        self.used_bytes = 0
        self.trimmed_bytes = 0  # bytes of messages dropped to keep the budget: a counter for /metrics
        # Buffers by recency of their last append, least recent first.
        self._logs: OrderedDict[TopicLog, None] = OrderedDict()
        # Buffers that may hold encodings, in the order they began to: whose encodings go first.
        self._encoded: OrderedDict[TopicLog, None] = OrderedDict()

    def appended(self, log: TopicLog, extra_bytes: int) -> None:
        """``log`` retained a new message of ``extra_bytes``; it becomes the most recently used."""
        logs = self._logs
        if log in logs:
            logs.move_to_end(log)
        else:
            logs[log] = None
        self.used_bytes += extra_bytes
        if self.used_bytes > self.max_bytes:
            self._drop_encodings()
            if self.used_bytes > self.max_bytes:
                self._trim(log)

    def encoding_cached(self, log: TopicLog, extra_bytes: int, message: Message) -> bool:
        """``log`` admitted an encoding for ``message`` (``extra_bytes``: net of what it dropped for it).

        Over the budget, drops encodings first of other buffers, then of ``log``'s messages older than
        ``message``; False if still over (``log`` then settles later).
        """
        self.used_bytes += extra_bytes
        encoded = self._encoded
        if log not in encoded:
            encoded[log] = None
        if self.used_bytes > self.max_bytes:
            del encoded[log]
            self._drop_encodings()
            if self.used_bytes > self.max_bytes:
                self.used_bytes -= log.drop_encodings(self.used_bytes - self.max_bytes, before=message)
            encoded[log] = None
        return self.used_bytes <= self.max_bytes

    def released(self, log: TopicLog, freed_bytes: int, *, forget: bool = False) -> None:
        """``log`` dropped ``freed_bytes``; with ``forget`` it is gone for good (its topic was retired)."""
        self.used_bytes -= freed_bytes
        if forget:
            self._logs.pop(log, None)
            self._encoded.pop(log, None)

    def settle(self) -> None:
        """Drop encodings until within the budget (encodings kept over it for a moment, see the module)."""
        if self.used_bytes > self.max_bytes:
            self._drop_encodings()

    def _drop_encodings(self) -> None:
        """Drop encodings, the buffers that cached theirs longest ago first, until within or none is left.

        A buffer is visited again only once it caches a new encoding: amortized O(1) per encoding cached.
        """
        encoded = self._encoded
        while self.used_bytes > self.max_bytes and encoded:
            log, _ = encoded.popitem(last=False)
            self.used_bytes -= log.drop_encodings(self.used_bytes - self.max_bytes)
            if log.encoded_bytes:  # within the budget again before it was emptied: it stays first
                encoded[log] = None
                encoded.move_to_end(log, last=False)

    def _trim(self, growing: TopicLog) -> None:
        """Empty the least recently used buffers (``growing`` last, keeping its newest message) until within.

        An emptied buffer leaves the recency order until its next append, so a trim never walks past it again.
        """
        logs = self._logs
        while self.used_bytes > self.max_bytes:
            log = next(iter(logs))
            if log is growing:  # the most recent: every other one is empty
                self.trimmed_bytes += growing.evict_down_to(1)
                return
            del logs[log]
            self.trimmed_bytes += log.evict_down_to(0)

    def __len__(self) -> int:
        return len(self._logs)


class TopicLog:
    """A topic instance's retention buffer with O(1) reads at any retained position: what subscriptions read
    with their cursors, whatever the engine (fan-out is the core's).

    Messages live in a list from index ``_head`` on; evicted slots are cleared and the list is compacted
    once the dead prefix is as long as the live part, so appends and evictions are amortized O(1). The
    messages before index ``_bare`` are bare (their encodings were dropped); that cursor only moves forward.
    """

    __slots__ = (
        "_bare",
        "_budget",
        "_bytes",
        "_defer",
        "_encoded_bytes",
        "_head",
        "_max_bytes",
        "_max_count",
        "_messages",
        "_next",
        "_page",
        "_settling",
    )

    def __init__(
        self,
        sequence_page: int,
        max_count: int,
        max_bytes: int,
        budget: RetentionBudget | None = None,
        defer: Defer = after_ready,
    ) -> None:
        self._page = sequence_page
        self._max_count = max_count
        self._max_bytes = max_bytes
        self._budget = budget
        self._defer = defer
        self._messages: list[Message | None] = []
        self._head = 0
        self._bare = 0
        self._next = 1
        self._bytes = 0  # values and encodings
        self._encoded_bytes = 0
        self._settling = False  # a settle is scheduled

    @property
    def sequence_page(self) -> int:
        """The page of this instance; every message in it carries this page."""
        return self._page

    @property
    def next_sequence_number(self) -> int:
        """The sequence number after the newest one this log holds (1 for a new instance)."""
        return self._next

    @property
    def first_sequence_number(self) -> int:
        """The oldest retained sequence number; equals ``next_sequence_number`` when nothing is retained."""
        return self._next - (len(self._messages) - self._head)

    @property
    def retained_bytes(self) -> int:
        """What the retained messages hold: their values and the encodings cached on them."""
        return self._bytes

    @property
    def encoded_bytes(self) -> int:
        """What the encodings cached on the retained messages hold (part of `retained_bytes`)."""
        return self._encoded_bytes

    def append(self, value: str | bytes, publisher_id: str, size: int, published_at: float = 0.0) -> Message:
        """Number a new message in this log's page, retain it and return it."""
        message = Message(self._page, self._next, value, publisher_id, size, published_at)
        self.push(message)
        return message

    def push(self, message: Message) -> None:
        """Retain an already numbered message, which must carry this page and ``next_sequence_number``."""
        footprint = message.footprint
        message.retainer = self
        self._next = message.sequence_number + 1
        messages = self._messages
        messages.append(message)
        self._bytes += footprint
        self._encoded_bytes += footprint - message.size
        if len(messages) - self._head > self._max_count or self._bytes > self._max_bytes:
            self._keep_within_bounds()
        if self._budget is not None:
            self._budget.appended(self, footprint)

    def admit_encoding(self, message: Message, size: int) -> bool:
        """Count an encoding of ``size`` bytes for ``message``, dropping older messages' encodings for room
        (the `Retainer` of every message this log holds); False for a bare message."""
        index = len(self._messages) - (self._next - message.sequence_number)
        if index < self._bare:
            return False
        self._bytes += size
        self._encoded_bytes += size
        freed = 0
        # Room from older messages' encodings; none while settling: what this turn caches stays until then.
        if self._bytes > self._max_bytes and not self._settling and self._bare < index:
            freed = self.drop_encodings(self._bytes - self._max_bytes, before=message)
        within = self._bytes <= self._max_bytes
        if self._budget is not None:
            within = self._budget.encoding_cached(self, size - freed, message) and within
        if not within and not self._settling:
            self._settling = True
            self._defer(self._settle)
        return True

    def drop_encodings(self, excess: int, before: Message | None = None) -> int:
        """Drop the encodings cached on the oldest messages (up to ``before``, excluded, if given) until
        ``excess`` bytes are freed; the messages passed become bare. Returns the bytes freed, which the
        caller tells the budget about."""
        messages = self._messages
        end = len(messages) if before is None else len(messages) - (self._next - before.sequence_number)
        bare = max(self._bare, self._head)
        freed = 0
        while freed < excess and bare < end:
            message = messages[bare]
            assert message is not None
            extra = message.footprint - message.size
            if extra:
                message.encodings = None
                message.footprint = message.size
                freed += extra
            bare += 1
        self._bare = bare
        self._bytes -= freed
        self._encoded_bytes -= freed
        return freed

    def _settle(self) -> None:
        """Drop, oldest first, the encodings kept over the bounds since `admit_encoding` scheduled this."""
        self._settling = False
        freed = self.drop_encodings(self._bytes - self._max_bytes) if self._bytes > self._max_bytes else 0
        budget = self._budget
        if budget is not None:
            budget.released(self, freed)
            if budget.used_bytes > budget.max_bytes:
                budget.settle()

    def _keep_within_bounds(self) -> None:
        """Evict the oldest messages beyond the count, or while their values alone are over the size (always
        keeping the newest), then drop encodings until within the size."""
        messages = self._messages
        freed = 0
        while len(messages) - self._head > 1 and (
            len(messages) - self._head > self._max_count or self._bytes - self._encoded_bytes > self._max_bytes
        ):
            freed += self._evict_oldest()
        if self._bytes > self._max_bytes and not self._settling:
            freed += self.drop_encodings(self._bytes - self._max_bytes)
        if self._budget is not None:
            self._budget.released(self, freed)
        self._compact()

    def evict_down_to(self, keep: int) -> int:
        """Evict the oldest messages until at most ``keep`` remain; returns the bytes freed."""
        freed = 0
        while len(self._messages) - self._head > keep:
            freed += self._evict_oldest()
        if self._budget is not None:
            self._budget.released(self, freed)
        self._compact()
        return freed

    def _evict_oldest(self) -> int:
        """Evict the oldest message; returns its footprint (already taken off this log's counts)."""
        messages = self._messages
        evicted = messages[self._head]
        assert evicted is not None
        evicted.retainer = None  # later encodings of it (a subscriber still sending it) are not ours to count
        messages[self._head] = None
        self._head += 1
        footprint = evicted.footprint
        self._bytes -= footprint
        self._encoded_bytes -= footprint - evicted.size
        return footprint

    def _compact(self) -> None:
        messages = self._messages
        head = self._head
        if head >= 64 and head * 2 >= len(messages):
            del messages[:head]
            self._bare = max(0, self._bare - head)
            self._head = 0

    def restart(self, sequence_page: int, next_sequence_number: int) -> None:
        """Forget every retained message and continue empty in ``sequence_page`` at ``next_sequence_number``."""
        self.evict_down_to(0)
        self._page = sequence_page
        self._next = next_sequence_number
        self._messages = []
        self._head = 0
        self._bare = 0
        self._bytes = 0
        self._encoded_bytes = 0

    def forget(self) -> None:
        """The topic instance is retired: give its bytes back to the budget."""
        self.evict_down_to(0)
        if self._budget is not None:
            self._budget.released(self, 0, forget=True)

    def read_from(self, sequence_number: int, limit: int) -> list[Message]:
        """Up to ``limit`` retained messages from ``sequence_number`` on (which must be retained)."""
        start = self._head + sequence_number - self.first_sequence_number
        return self._messages[start : start + limit]  # type: ignore[return-value]
