"""The seams the core depends on: a message engine and a durable store, implemented outside the core."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from tidings.server.core._events import Message


class TopicLog(Protocol):
    """The retained messages of one topic instance, in sequence order, bounded by count and bytes."""

    @property
    def sequence_page(self) -> int:
        """The page of this instance; every message in it carries this page."""
        ...

    @property
    def next_sequence_number(self) -> int:
        """The sequence number the next appended message gets (1 for a new instance)."""
        ...

    @property
    def first_sequence_number(self) -> int:
        """The oldest retained sequence number; equals ``next_sequence_number`` when nothing is retained."""
        ...

    def append(self, value: str | bytes, publisher_id: str, size: int, published_at: float = 0.0) -> Message:
        """Append a message, evicting the oldest ones beyond the retention bounds, and return it.

        ``published_at`` is the service clock's reading, kept on the message for latency metrics.
        """
        ...

    def read_from(self, sequence_number: int, limit: int) -> Sequence[Message]:
        """Up to ``limit`` retained messages from ``sequence_number`` on (which must be retained)."""
        ...


class Engine(Protocol):
    """Holds topic logs: where messages live and how they are numbered."""

    def open_topic(self, cache_name: str, topic_name: str, sequence_page: int) -> TopicLog:
        """Start a new topic instance with the given page."""
        ...

    def retire_topic(self, cache_name: str, topic_name: str) -> None:
        """Forget a topic instance and its retained messages."""
        ...


class Store(Protocol):
    """Durable state: the caches, and the highest sequence page handed out (pages only grow)."""

    async def list_caches(self) -> list[str]:
        """All cache names, sorted."""
        ...

    async def create_cache(self, cache_name: str) -> bool:
        """Create a cache; False if it already existed."""
        ...

    async def delete_cache(self, cache_name: str) -> bool:
        """Delete a cache; False if it did not exist."""
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
