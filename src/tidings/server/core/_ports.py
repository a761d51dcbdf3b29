"""The seams the core depends on: a message engine and a durable store, implemented outside the core."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from tidings.server.core._events import Message
from tidings.server.core._pages import PageClock
from tidings.server.core._stats import EngineStats


class TopicLog(Protocol):
    """The retained messages of one topic instance as this process holds them, in sequence order, bounded by
    count and bytes: what subscriptions read with their cursors (fan-out is the core's, whatever the engine)."""

    @property
    def sequence_page(self) -> int:
        """The page of this instance; every message in it carries this page."""
        ...

    @property
    def next_sequence_number(self) -> int:
        """The sequence number after the newest one this log holds (1 for a new instance)."""
        ...

    @property
    def first_sequence_number(self) -> int:
        """The oldest retained sequence number; equals ``next_sequence_number`` when nothing is retained."""
        ...

    def read_from(self, sequence_number: int, limit: int) -> Sequence[Message]:
        """Up to ``limit`` retained messages from ``sequence_number`` on (which must be retained)."""
        ...


class TopicListener(Protocol):
    """What an engine tells the core about one topic instance (the core's topic implements it)."""

    def messages_arrived(self) -> None:
        """The log holds newer messages (published by this process or, with a shared engine, by any)."""
        ...

    def page_changed(self) -> None:
        """The log moved to a new, greater page (a shared engine lost the topic): every reader restarts there."""
        ...


class EngineTopic(TopicLog, Protocol):
    """A topic instance in an engine: its log, and publishing to it."""

    def publish(
        self, value: str | bytes, publisher_id: str, size: int, published_at: float
    ) -> Message | Awaitable[Message]:
        """Number and retain a message.

        An engine local to this process appends at once, calls `TopicListener.messages_arrived` and returns the
        message: no suspension on the publish path. A shared engine returns an awaitable of the numbered message
        and calls the listener when the message (like any other process's) reaches this process's log.
        ``published_at`` is the service clock's reading, kept on the message for latency metrics.
        """
        ...

    def follow(self, resume_at: int) -> Awaitable[None] | None:
        """Make the log current and keep it current, before a subscription that resumes at ``resume_at`` (0: no
        position) reads it.

        None when it already is (a local engine); otherwise an awaitable that resolves once this process
        receives every new message of the topic, holds all it retained and, when ``resume_at`` is ahead of the
        log (the subscriber saw newer messages through another process), all that was published before it.
        Raises `Unavailable` when the engine cannot be reached.
        """
        ...


class RetentionUsage(Protocol):
    """What the retention buffers of this process hold together, against ``--max-retained-bytes``."""

    @property
    def used_bytes(self) -> int: ...

    @property
    def max_bytes(self) -> int: ...

    @property
    def trimmed_bytes(self) -> int:
        """Retained bytes dropped so far to stay within ``max_bytes``."""
        ...


class Engine(Protocol):
    """Where messages live and how they are numbered: topic instances, opened and retired by the core."""

    @property
    def budget(self) -> RetentionUsage | None:
        """The process-wide retention budget, if this engine keeps one."""
        ...

    @property
    def healthy(self) -> bool:
        """Whether the engine can serve now (a shared engine reaches its backing service)."""
        ...

    @property
    def stats(self) -> EngineStats | None:
        """A shared engine's counters (for ``/metrics``); None for a local one."""
        ...

    def open_topic(self, cache_name: str, topic_name: str, pages: PageClock, listener: TopicListener) -> EngineTopic:
        """Open the topic's current instance; ``pages`` issues the page of a new instance."""
        ...

    def retire_topic(self, cache_name: str, topic_name: str) -> None:
        """This process no longer uses the topic (no subscribers, idle): drop what it holds for it."""
        ...

    def watch_caches(self, deleted: Callable[[str], None]) -> None:
        """Call ``deleted`` with the name of each cache another process deletes (a shared engine only)."""
        ...

    async def cache_deleted(self, cache_name: str) -> None:
        """Tell the other processes that this one deleted ``cache_name`` (nothing to do for a local engine)."""
        ...


class Store(Protocol):
    """Durable state: the caches, and the highest sequence page handed out (pages only grow)."""

    @property
    def shared(self) -> bool:
        """Whether other servers change this store too (then a cache this one does not know is looked up)."""
        ...

    async def list_caches(self) -> list[str]:
        """All cache names, sorted."""
        ...

    async def cache_exists(self, cache_name: str) -> bool:
        """Whether the cache exists now (in a shared store: created by any server and not deleted since)."""
        ...

    async def caches_version(self) -> int:
        """A number that every cache creation and deletion raises, by any server sharing the store (an unshared
        store may answer a constant: only its own server changes its caches)."""
        ...

    async def create_cache(self, cache_name: str) -> bool:
        """Create a cache; False if it already existed."""
        ...

    async def delete_cache(self, cache_name: str) -> bool:
        """Delete a cache, and its webhooks with it; False if it did not exist."""
        ...

    async def load_page_floor(self) -> int:
        """The highest sequence page recorded, 0 if none."""
        ...

    async def save_page_floor(self, sequence_page: int) -> None:
        """Record that pages up to ``sequence_page`` were handed out."""
        ...

    async def close(self) -> None:
        """Flush and close."""
        ...
