"""The in-memory engine: one process; messages are numbered in the core's topic logs and live only there.

Publishing appends to the topic's log and wakes its subscribers within the call (no suspension: the methods are
``async`` for the seam's sake only). Retention is the logs' own (`tidings.server.core.TopicLog`): per topic within
``--retention-size``, and all topics together within ``--max-retained-bytes`` (a `RetentionBudget`).
"""

from __future__ import annotations

from collections.abc import Callable

from tidings.server.core import (
    Defer,
    EngineStatus,
    Message,
    PageClock,
    Position,
    RetentionBudget,
    TopicListener,
    TopicLog,
    after_ready,
)


class MemoryEngine:
    """Topic logs held in this process's memory; messages do not survive a restart."""

    def __init__(
        self,
        retention_messages: int,
        retention_bytes: int,
        max_retained_bytes: int | None = None,
        *,
        defer: Defer = after_ready,
    ) -> None:
        self._retention_messages = retention_messages
        self._retention_bytes = retention_bytes
        self.budget = None if max_retained_bytes is None else RetentionBudget(max_retained_bytes)
        self._defer = defer  # how logs settle what they keep over their bounds for a moment (tests step it)
        self._status = EngineStatus(healthy=True, retention=self.budget)

    async def open_topic(self, cache_name: str, topic_name: str, pages: PageClock, listener: TopicListener) -> TopicLog:
        """A new, empty instance in a fresh page."""
        return TopicLog(pages.next_page(), self._retention_messages, self._retention_bytes, self.budget, self._defer)

    async def publish(
        self, topic: TopicListener, value: str | bytes, publisher_id: str, size: int, published_at: float
    ) -> Message:
        """Append to the log and wake the subscribers, without suspending."""
        message = topic.log.append(value, publisher_id, size, published_at)
        topic.messages_arrived()
        return message

    async def follow(self, topic: TopicListener, resume_at: Position) -> None:
        """Nothing to wait for: this process is the only publisher."""

    async def retire_topic(self, topic: TopicListener) -> None:
        """Nothing held beyond the log, which the core forgets."""

    async def watch_caches(self, deleted: Callable[[str], None]) -> None:
        """Nothing to watch: no other process shares these caches."""

    async def cache_deleted(self, cache_name: str) -> None:
        """Nobody else to tell."""

    async def status(self) -> EngineStatus:
        """Always healthy (nothing outside this process), with the retention budget if one is set."""
        return self._status
