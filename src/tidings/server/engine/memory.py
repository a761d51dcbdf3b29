"""The in-memory engine: one process, retention buffers in plain lists."""

from __future__ import annotations

from collections.abc import Callable

from tidings.server.core import Message, PageClock, TopicListener


class MemoryTopicLog:
    """A topic instance's retention buffer with O(1) reads at any retained position.

    Messages live in a list from index ``_head`` on; evicted slots are cleared and the list is compacted
    once the dead prefix is as long as the live part, so appends and evictions are amortized O(1).
    """

    __slots__ = ("_bytes", "_head", "_max_bytes", "_max_count", "_messages", "_next", "_page")

    def __init__(self, sequence_page: int, max_count: int, max_bytes: int) -> None:
        self._page = sequence_page
        self._max_count = max_count
        self._max_bytes = max_bytes
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
        """Total size of the retained messages."""
        return self._bytes

    def append(self, value: str | bytes, publisher_id: str, size: int, published_at: float = 0.0) -> Message:
        """Number a new message in this log's page, retain it and return it."""
        message = Message(self._page, self._next, value, publisher_id, size, published_at)
        self.push(message)
        return message

    def push(self, message: Message) -> None:
        """Retain an already numbered message, which must carry this page and ``next_sequence_number``."""
        size = message.size
        self._next = message.sequence_number + 1
        messages = self._messages
        messages.append(message)
        self._bytes += size
        # Evict the oldest beyond either bound, always keeping the newest message.
        while (len(messages) - self._head > self._max_count or self._bytes > self._max_bytes) and len(
            messages
        ) - self._head > 1:
            evicted = messages[self._head]
            assert evicted is not None
            self._bytes -= evicted.size
            messages[self._head] = None
            self._head += 1
        if self._head >= 64 and self._head * 2 >= len(messages):
            del messages[: self._head]
            self._head = 0

    def restart(self, sequence_page: int, next_sequence_number: int) -> None:
        """Forget every retained message and continue empty in ``sequence_page`` at ``next_sequence_number``."""
        self._page = sequence_page
        self._next = next_sequence_number
        self._messages = []
        self._head = 0
        self._bytes = 0

    def read_from(self, sequence_number: int, limit: int) -> list[Message]:
        start = self._head + sequence_number - self.first_sequence_number
        return self._messages[start : start + limit]  # type: ignore[return-value]


class MemoryTopic(MemoryTopicLog):
    """A topic instance of the memory engine: publishing appends to the log at once and wakes the core."""

    __slots__ = ("_listener",)

    def __init__(self, sequence_page: int, max_count: int, max_bytes: int, listener: TopicListener) -> None:
        super().__init__(sequence_page, max_count, max_bytes)
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

    def __init__(self, retention_messages: int, retention_bytes: int) -> None:
        self._retention_messages = retention_messages
        self._retention_bytes = retention_bytes

    @property
    def healthy(self) -> bool:
        """Always: nothing outside this process."""
        return True

    @property
    def stats(self) -> None:
        """Nothing to count beyond the core's own counters."""
        return None

    def open_topic(self, cache_name: str, topic_name: str, pages: PageClock, listener: TopicListener) -> MemoryTopic:
        return MemoryTopic(pages.next_page(), self._retention_messages, self._retention_bytes, listener)

    def retire_topic(self, cache_name: str, topic_name: str) -> None:
        """Nothing to do: the log is garbage once the core lets go of it."""

    def watch_caches(self, deleted: Callable[[str], None]) -> None:
        """Nothing to watch: no other process shares these caches."""

    async def cache_deleted(self, cache_name: str) -> None:
        """Nobody else to tell."""
