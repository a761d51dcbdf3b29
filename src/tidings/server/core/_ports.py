"""The seams the core depends on: a message engine and a durable store, implemented outside the core."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from tidings.server.core._events import Message
from tidings.server.core._log import TopicLog
from tidings.server.core._pages import PageClock
from tidings.server.core._position import Position
from tidings.server.core._stats import EngineStatus


class TopicListener(Protocol):
    """A topic instance of the core as an engine sees it: its log, and what the engine tells the core about it.

    The core's topic implements it, and is what the core hands back to the engine's per-topic methods."""

    @property
    def log(self) -> TopicLog:
        """The log the engine's `Engine.open_topic` returned for this instance, which the engine appends to."""
        ...

    def messages_arrived(self) -> None:
        """The log holds newer messages (published by this process or, with a shared engine, by any)."""
        ...

    def page_changed(self) -> None:
        """The log moved to a new, greater page (a shared engine lost the topic): every reader restarts there."""
        ...


class Engine(Protocol):
    """Where messages are numbered and how they reach this process's topic logs: the whole seam between the
    core and a backend, async only (fan-out to subscribers is the core's, written once above it).

    An engine local to this process never suspends in these methods (they are ``async`` for the shared one):
    its `publish` appends and wakes the subscribers within the call.
    """

    async def open_topic(self, cache_name: str, topic_name: str, pages: PageClock, listener: TopicListener) -> TopicLog:
        """Open the topic's current instance for ``listener``; ``pages`` issues the page of a new instance.

        Returns the log the engine keeps for it (bounded by the topic retention settings)."""
        ...

    async def publish(
        self, topic: TopicListener, value: str | bytes, publisher_id: str, size: int, published_at: float
    ) -> Message:
        """Number and retain a message in ``topic``'s instance and return it.

        A local engine appends to the log and calls `TopicListener.messages_arrived` before it returns; a shared
        one calls it when the message (like any other process's) reaches this process's log. ``published_at``
        is the service clock's reading, kept on the message for latency metrics.
        """
        ...

    async def follow(self, topic: TopicListener, resume_at: Position) -> None:
        """Make ``topic``'s log current and keep it current, before a subscription that resumes at ``resume_at``
        reads it: return once this process receives every new message of the topic, holds all it retained and,
        when ``resume_at`` is ahead of the log (the subscriber saw newer messages through another process), all
        that was published before it. Raises `Unavailable` when the engine cannot be reached."""
        ...

    async def retire_topic(self, topic: TopicListener) -> None:
        """This process no longer uses ``topic``'s instance (no subscribers, idle, or its cache was deleted): drop
        what the engine holds for it. The core has dropped it already, and may have opened the topic again."""
        ...

    async def watch_caches(self, deleted: Callable[[str], None]) -> None:
        """Call ``deleted`` with the name of each cache another process deletes (a shared engine only)."""
        ...

    async def cache_deleted(self, cache_name: str) -> None:
        """Tell the other processes that this one deleted ``cache_name`` (nothing to do for a local engine)."""
        ...

    async def status(self) -> EngineStatus:
        """Whether the engine can serve now, its counters and the retention budget (for ``/health`` and
        ``/metrics``)."""
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
