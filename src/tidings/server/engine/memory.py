"""The in-memory engine: one process, retention buffers in plain lists.

Retention counts what a message holds: its value and the wire encodings transports cache on it (a message
read over gRPC, HTTP and SSE holds about four copies of its value). A topic's buffer keeps its bytes within
``--retention-size``; a `RetentionBudget` keeps all buffers together within ``--max-retained-bytes``,
emptying the buffers of the topics published to least recently first.
"""

from __future__ import annotations

from collections.abc import Callable

from tidings.server.core import Message, PageClock, TopicListener


class RetentionBudget:
    """The bytes every retention buffer of a process holds together, kept within ``max_bytes``."""

    __slots__ = ("_logs", "max_bytes", "trimmed_bytes", "used_bytes")

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 1:
            raise ValueError("max_bytes must be positive")
        self.max_bytes = max_bytes
        self.used_bytes = 0
        self.trimmed_bytes = 0  # retained bytes dropped to keep the budget: a counter for /metrics
        # Buffers by recency of their last append, least recent first (a dict keeps insertion order).
        self._logs: dict[MemoryTopicLog, None] = {}

    def appended(self, log: MemoryTopicLog, extra_bytes: int) -> None:
        """``log`` retained a new message of ``extra_bytes``; it becomes the most recently used."""
        logs = self._logs
        logs.pop(log, None)
        logs[log] = None
        self.used_bytes += extra_bytes
        if self.used_bytes > self.max_bytes:
            self._trim(log)

    def grew(self, log: MemoryTopicLog, extra_bytes: int) -> None:
        """A message ``log`` holds grew by ``extra_bytes`` (an encoding was cached on it)."""
        self.used_bytes += extra_bytes
        if self.used_bytes > self.max_bytes:
            self._trim(log)

    def released(self, log: MemoryTopicLog, freed_bytes: int, *, forget: bool = False) -> None:
        """``log`` dropped ``freed_bytes``; with ``forget`` it is gone for good (its topic was retired)."""
        self.used_bytes -= freed_bytes
        if forget:
            self._logs.pop(log, None)

    def _trim(self, growing: MemoryTopicLog) -> None:
        """Empty the least recently used buffers (``growing`` last, keeping its newest message) until within.

        An emptied buffer leaves the recency order until its next append, so a trim never walks past it again.
        """
        logs = self._logs
        for log in list(logs):
            if self.used_bytes <= self.max_bytes:
                return
            if log is not growing:
                self.trimmed_bytes += log.evict_down_to(0)
                del logs[log]
        if self.used_bytes > self.max_bytes:
            self.trimmed_bytes += growing.evict_down_to(1)

    def __len__(self) -> int:
        return len(self._logs)


class MemoryTopicLog:
    """A topic instance's retention buffer with O(1) reads at any retained position.

    Messages live in a list from index ``_head`` on; evicted slots are cleared and the list is compacted
    once the dead prefix is as long as the live part, so appends and evictions are amortized O(1).
    """

    __slots__ = ("_budget", "_bytes", "_head", "_max_bytes", "_max_count", "_messages", "_next", "_page")

    def __init__(
        self, sequence_page: int, max_count: int, max_bytes: int, budget: RetentionBudget | None = None
    ) -> None:
        self._page = sequence_page
        self._max_count = max_count
        self._max_bytes = max_bytes
        self._budget = budget
        self._messages: list[Message | None] = []
        self._head = 0
        self._next = 1
        self._bytes = 0

    @property
    def sequence_page(self) -> int:
        return self._page

    @property
    def next_sequence_number(self) -> int:
        return self._next

    @property
    def first_sequence_number(self) -> int:
        return self._next - (len(self._messages) - self._head)

    @property
    def retained_bytes(self) -> int:
        """What the retained messages hold: their values and the encodings cached on them."""
        return self._bytes

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
        # Evict the oldest beyond either bound, always keeping the newest message.
        if len(messages) - self._head > self._max_count or self._bytes > self._max_bytes:
            self._evict_beyond_bounds()
        if self._budget is not None:
            self._budget.appended(self, footprint)

    def grew(self, extra_bytes: int) -> None:
        """A retained message grew (a transport cached its encoding): count it, evicting beyond the bounds."""
        self._bytes += extra_bytes
        if self._budget is not None:
            self._budget.grew(self, extra_bytes)
        if self._bytes > self._max_bytes:
            self._evict_beyond_bounds()

    def _evict_beyond_bounds(self) -> None:
        messages = self._messages
        freed = 0
        while (len(messages) - self._head > self._max_count or self._bytes - freed > self._max_bytes) and len(
            messages
        ) - self._head > 1:
            freed += self._evict_oldest()
        self._bytes -= freed
        if self._budget is not None:
            self._budget.released(self, freed)
        self._compact()

    def evict_down_to(self, keep: int) -> int:
        """Evict the oldest messages until at most ``keep`` remain; returns the bytes freed."""
        freed = 0
        while len(self._messages) - self._head > keep:
            freed += self._evict_oldest()
        self._bytes -= freed
        if self._budget is not None:
            self._budget.released(self, freed)
        self._compact()
        return freed

    def _evict_oldest(self) -> int:
        messages = self._messages
        evicted = messages[self._head]
        assert evicted is not None
        evicted.retainer = None  # later encodings of it (a subscriber still sending it) are not ours to count
        messages[self._head] = None
        self._head += 1
        return evicted.footprint

    def _compact(self) -> None:
        messages = self._messages
        if self._head >= 64 and self._head * 2 >= len(messages):
            del messages[: self._head]
            self._head = 0

    def restart(self, sequence_page: int, next_sequence_number: int) -> None:
        """Forget every retained message and continue empty in ``sequence_page`` at ``next_sequence_number``."""
        self.evict_down_to(0)
        self._page = sequence_page
        self._next = next_sequence_number
        self._messages = []
        self._head = 0
        self._bytes = 0

    def forget(self) -> None:
        """The topic instance is retired: give its bytes back to the budget."""
        self.evict_down_to(0)
        if self._budget is not None:
            self._budget.released(self, 0, forget=True)

    def read_from(self, sequence_number: int, limit: int) -> list[Message]:
        start = self._head + sequence_number - self.first_sequence_number
        return self._messages[start : start + limit]  # type: ignore[return-value]


class MemoryTopic(MemoryTopicLog):
    """A topic instance of the memory engine: publishing appends to the log at once and wakes the core."""

    __slots__ = ("_listener",)

    def __init__(
        self,
        sequence_page: int,
        max_count: int,
        max_bytes: int,
        listener: TopicListener,
        budget: RetentionBudget | None = None,
    ) -> None:
        super().__init__(sequence_page, max_count, max_bytes, budget)
        self._listener = listener

    def publish(self, value: str | bytes, publisher_id: str, size: int, published_at: float) -> Message:
        message = Message(self._page, self._next, value, publisher_id, size, published_at)
        self.push(message)
        self._listener.messages_arrived()
        return message

    def follow(self, resume_at: int) -> None:
        """Nothing to wait for: this process is the only publisher."""


class MemoryEngine:
    """Topic logs held in this process's memory; messages do not survive a restart."""

    def __init__(self, retention_messages: int, retention_bytes: int, max_retained_bytes: int | None = None) -> None:
        self._retention_messages = retention_messages
        self._retention_bytes = retention_bytes
        self.budget = None if max_retained_bytes is None else RetentionBudget(max_retained_bytes)
        self._topics: dict[tuple[str, str], MemoryTopic] = {}

    @property
    def healthy(self) -> bool:
        """Always: nothing outside this process."""
        return True

    @property
    def stats(self) -> None:
        """Nothing to count beyond the core's own counters."""
        return None

    def open_topic(self, cache_name: str, topic_name: str, pages: PageClock, listener: TopicListener) -> MemoryTopic:
        topic = MemoryTopic(pages.next_page(), self._retention_messages, self._retention_bytes, listener, self.budget)
        self._topics[cache_name, topic_name] = topic
        return topic

    def retire_topic(self, cache_name: str, topic_name: str) -> None:
        """Give the topic's retained bytes back to the budget; the log is garbage once the core lets go of it."""
        topic = self._topics.pop((cache_name, topic_name), None)
        if topic is not None:
            topic.forget()

    def watch_caches(self, deleted: Callable[[str], None]) -> None:
        """Nothing to watch: no other process shares these caches."""

    async def cache_deleted(self, cache_name: str) -> None:
        """Nobody else to tell."""
