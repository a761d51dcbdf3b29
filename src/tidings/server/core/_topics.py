"""Caches' and topics' live state: a topic instance, the cursors reading it, and what retires it (README
*Subscriptions, resume and discontinuities*).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from tidings.server.core._auth import Principal
from tidings.server.core._errors import TopicsError
from tidings.server.core._heartbeats import HeartbeatWheel, Link
from tidings.server.core._limits import TokenBucket
from tidings.server.core._log import TopicLog


class Cursor(Protocol):
    """What a topic instance and the service ask of a subscriber's cursor (`_cursor.TopicCursor`, which imports
    this module)."""

    last_sent: float
    principal: Principal
    # Its place in a `HeartbeatWheel` bucket while it is in one (`_heartbeats.Link`), set by the wheel only.
    heartbeat_next: Link | None
    heartbeat_prev: Link | None

    @property
    def direct(self) -> object | None:
        """Set when the publish may write to it (`deliver_from_publish`)."""
        ...

    @property
    def waiter(self) -> asyncio.Future[None] | None:
        """Resolved to wake its reader."""
        ...

    def deliver_from_publish(self) -> bool:
        """Write the new messages to the transport from the publish; False when the reader must be woken."""
        ...

    def heartbeat_from_ticker(self, now: float) -> bool:
        """Write a heartbeat to the transport from the ticker; False when the reader must be woken to send it."""
        ...

    @property
    def parked(self) -> bool:
        """Whether it is among its topic instance's waiting cursors."""
        ...

    def wake_for_heartbeat(self) -> None:
        """Stop waiting, and wake the reader to send a heartbeat."""
        ...

    def wake(self, heartbeat: bool = False) -> None:
        """Wake the reader (``heartbeat``: with a heartbeat when it has nothing else)."""
        ...

    def restart_at(self, first: int, sequence_page: int) -> None:
        """Continue at ``first`` in a new page, with a discontinuity."""
        ...

    def end(self, error: TopicsError) -> None:
        """End the subscription with ``error``."""
        ...


class CacheState:
    """Per-cache bookkeeping: its live topic instances, subscription count and publish rate limiter."""

    __slots__ = ("name", "publish_bucket", "subscriptions", "topics")

    def __init__(self, name: str, publish_bucket: TokenBucket | None) -> None:
        self.name = name
        self.publish_bucket = publish_bucket
        self.subscriptions = 0
        self.topics: set[str] = set()


class TopicInstance:
    """A topic's current instance: its log, the cursors reading it and what retires it.

    It is the engine's `TopicListener` for the instance: the engine calls `messages_arrived` when the log grows.
    ``clock`` is the service's; ``released`` is told of each cursor closed, once this instance let it go;
    ``heartbeats`` finds the parked cursors due a heartbeat (one wheel serves every instance of the service).
    """

    __slots__ = (
        "cache",
        "clock",
        "closed_by",
        "heartbeats",
        "joining",
        "last_active",
        "log",
        "name",
        "released",
        "subscriptions",
        "waiting",
    )

    def __init__(
        self,
        cache: CacheState,
        name: str,
        clock: Callable[[], float],
        released: Callable[[Cursor], None],
        heartbeats: HeartbeatWheel,
    ) -> None:
        self.cache = cache
        self.name = name
        self.clock = clock
        self.released = released
        self.heartbeats = heartbeats
        self.log: TopicLog  # set by the service once the engine opened the topic
        self.waiting: dict[Cursor, None] = {}
        self.subscriptions: dict[Cursor, None] = {}  # every open one
        self.joining = 0  # subscriptions being set up (waiting for the engine to follow the topic)
        self.last_active = clock()
        self.closed_by: TopicsError | None = None

    def add(self, cursor: Cursor) -> None:
        """Count a new subscription of this instance."""
        self.subscriptions[cursor] = None
        self.cache.subscriptions += 1

    def park(self, cursor: Cursor) -> None:
        """``cursor`` waits for something new: a message wakes it (or is written to it), and so does its heartbeat
        once it falls due (scheduled now, unless it still is from an earlier wait)."""
        self.waiting[cursor] = None
        if cursor.heartbeat_prev is None:
            self.heartbeats.schedule(cursor)

    def release(self, cursor: Cursor) -> None:
        """``cursor`` closed: forget it, and tell ``released``."""
        self.waiting.pop(cursor, None)
        self.heartbeats.forget(cursor)
        del self.subscriptions[cursor]
        self.cache.subscriptions -= 1
        self.last_active = self.clock()
        self.released(cursor)

    def wake_all(self) -> None:
        """Wake every waiting cursor (something happened: a message, or the end)."""
        waiting = self.waiting
        if waiting:
            self.waiting = {}
            for cursor in waiting:
                waiter = cursor.waiter
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)

    def messages_arrived(self) -> None:
        """New messages: each waiting cursor whose writer takes them now gets them from here (it stays waiting:
        no task wakes per delivery, `Cursor.deliver_from_publish`); wake the others."""
        waiting = self.waiting
        if waiting:
            still_waiting: dict[Cursor, None] = {}
            self.waiting = still_waiting
            for cursor in waiting:
                if cursor.direct is not None and cursor.deliver_from_publish():
                    still_waiting[cursor] = None
                    continue
                waiter = cursor.waiter
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)

    @property
    def in_use(self) -> bool:
        """Whether subscriptions hold or are joining this instance (then it is not retired)."""
        return bool(self.subscriptions) or self.joining > 0

    def page_changed(self) -> None:
        """The engine moved the log to a new page: every cursor gets a discontinuity into it, then everything the
        new page retains (as for a resume in another page: README *Subscriptions, resume and discontinuities*)."""
        log = self.log
        first = log.first_sequence_number
        for cursor in self.subscriptions:
            cursor.restart_at(first, log.sequence_page)
        self.wake_all()

    def close(self, error: TopicsError) -> None:
        """End every subscription of this instance with ``error``."""
        self.closed_by = error
        self.wake_all()
