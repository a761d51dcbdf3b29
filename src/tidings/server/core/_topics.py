"""Topic instances and subscriptions: the protocol's sequence, resume and delivery rules (README *Subscriptions,
resume and discontinuities*).

A subscription is a cursor into its topic instance's retention buffer, not a queue: publishing appends once
and wakes the subscribers that are waiting; each reads from its own cursor at its own pace. One that falls
behind the buffer gets a discontinuity, so a slow subscriber costs nothing but its cursor.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Final

from tidings.server.core._auth import Principal
from tidings.server.core._errors import TopicsError
from tidings.server.core._events import HEARTBEAT, Discontinuity, Event, Message
from tidings.server.core._limits import TokenBucket
from tidings.server.core._ports import EngineTopic

if TYPE_CHECKING:
    from tidings.server.core._service import TopicsService

# How many messages one read hands a subscriber: bounds what a slow subscriber holds on to.
READ_BATCH: Final = 32

# A transport's synchronous writer for one subscription (`Subscription.sink`): takes every message of the batch
# (True) or none of them (False: its socket or flow-control window is full; the subscription's reader then
# delivers them as usual).
Sink = Callable[[Sequence[Message]], bool]


class CacheState:
    """Per-cache bookkeeping: its live topic instances, subscription count and publish rate limiter."""

    __slots__ = ("name", "publish_bucket", "subscriptions", "topics")

    def __init__(self, name: str, publish_bucket: TokenBucket | None) -> None:
        self.name = name
        self.publish_bucket = publish_bucket
        self.subscriptions = 0
        self.topics: set[str] = set()


class TopicInstance:
    """A topic's current instance: its log, its subscriptions and what retires it.

    It is the engine's `TopicListener` for the instance: the engine calls `messages_arrived` when the log grows.
    """

    __slots__ = ("cache", "closed_by", "joining", "last_active", "log", "name", "subscriptions", "waiting")

    def __init__(self, cache: CacheState, name: str, now: float) -> None:
        self.cache = cache
        self.name = name
        self.log: EngineTopic  # set by the service once the engine opened the topic
        self.waiting: dict[Subscription, None] = {}
        self.subscriptions: dict[Subscription, None] = {}  # every open one
        self.joining = 0  # subscriptions being set up (waiting for the engine to follow the topic)
        self.last_active = now
        self.closed_by: TopicsError | None = None

    def wake_all(self) -> None:
        """Wake every waiting subscription (something happened: a message, or the end)."""
        waiting = self.waiting
        if waiting:
            self.waiting = {}
            for subscription in waiting:
                waiter = subscription._waiter
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)

    def messages_arrived(self) -> None:
        """New messages: hand them to each waiting subscription's `Subscription.sink` where it has one and takes
        them now (it stays waiting: no task wakes per delivery); wake the others."""
        waiting = self.waiting
        if waiting:
            still_waiting: dict[Subscription, None] = {}
            self.waiting = still_waiting
            for subscription in waiting:
                if subscription.sink is not None and subscription.push():
                    still_waiting[subscription] = None
                    continue
                waiter = subscription._waiter
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)

    @property
    def in_use(self) -> bool:
        """Whether subscriptions hold or are joining this instance (then it is not retired)."""
        return bool(self.subscriptions) or self.joining > 0

    def page_changed(self) -> None:
        """The engine moved the log to a new page: every subscription gets a discontinuity into it, then
        everything the new page retains (as for a resume in another page: README *Subscriptions, resume and
        discontinuities*)."""
        log = self.log
        first = log.first_sequence_number
        for subscription in self.subscriptions:
            subscription.restart_at(first, log.sequence_page)
        self.wake_all()

    def close(self, error: TopicsError) -> None:
        """End every subscription of this instance with ``error``."""
        self.closed_by = error
        self.wake_all()


class Subscription:
    """One subscriber's position in a topic instance; iterate it with `next_events`.

    Create subscriptions with `TopicsService.subscribe`; always `close` them (a ``with`` block does).
    """

    __slots__ = (
        "_closed",
        "_cursor",
        "_ended_by",
        "_heartbeat_due",
        "_pending",
        "_service",
        "_topic",
        "_waiter",
        "last_sent",
        "principal",
        "sink",
    )

    def __init__(
        self,
        service: TopicsService,
        topic: TopicInstance,
        cursor: int,
        pending: Discontinuity | None,
        now: float,
        principal: Principal,
    ) -> None:
        self._service = service
        self._topic = topic
        self._cursor = cursor
        self._pending = pending
        self._waiter: asyncio.Future[None] | None = None
        self._heartbeat_due = False
        self._closed = False
        self._ended_by: TopicsError | None = None
        self.last_sent = now
        self.principal = principal
        # Set by a transport that can write without waiting: new messages are then pushed to it from the
        # publish (`TopicInstance.messages_arrived`) instead of waking the subscription's reader.
        self.sink: Sink | None = None

    @property
    def cache_name(self) -> str:
        """The cache of the subscribed topic."""
        return self._topic.cache.name

    @property
    def topic_name(self) -> str:
        """The subscribed topic."""
        return self._topic.name

    @property
    def sequence_page(self) -> int:
        """The page of the topic instance this subscription reads."""
        return self._topic.log.sequence_page

    @property
    def next_sequence_number(self) -> int:
        """The sequence number of the next message this subscription will deliver."""
        return self._cursor

    @property
    def backlog(self) -> int:
        """How many published messages this subscription has not read yet (its lag, in messages)."""
        return max(0, self._topic.log.next_sequence_number - self._cursor)

    def poll(self) -> list[Event] | None:
        """The events available now, in order (never empty), or None: then await `wait` and poll again.

        Raises the `TopicsError` that ended the subscription (cache deleted, server shutting down,
        credentials revoked), or `RuntimeError` once it is closed. Transports loop on ``poll``/``wait``
        rather than `next_events` to spare a coroutine per batch on the delivery path.
        """
        if self._closed:
            raise RuntimeError("subscription is closed")
        topic = self._topic
        if topic.closed_by is not None:
            raise topic.closed_by
        if self._ended_by is not None:
            raise self._ended_by
        if self._pending is not None:
            pending, self._pending = self._pending, None
            return [pending]
        log = topic.log
        cursor = self._cursor
        if cursor < log.next_sequence_number:
            first = log.first_sequence_number
            events: list[Event]
            if cursor < first:
                # Fell behind the retention buffer: a discontinuity, then from the oldest retained message
                # (README *Subscriptions, resume and discontinuities*).
                batch = log.read_from(first, READ_BATCH)
                events = [Discontinuity(cursor - 1, first - 1, log.sequence_page), *batch]
                cursor = first
            else:
                events = batch = log.read_from(cursor, READ_BATCH)  # type: ignore[assignment]
            self._cursor = cursor + len(batch)
            self._heartbeat_due = False
            self.last_sent = self._service.clock()
            return events
        if self._heartbeat_due:
            self._heartbeat_due = False
            self.last_sent = self._service.clock()
            return [HEARTBEAT]
        return None

    def push(self) -> bool:
        """Hand the messages after the cursor to `sink` (the fast path of `TopicInstance.messages_arrived`);
        False when the reader must take over: the sink refused, or there is a discontinuity or an end to tell.
        """
        topic = self._topic
        if self._closed or self._pending is not None or self._ended_by is not None or topic.closed_by is not None:
            return False
        sink = self.sink
        log = topic.log
        cursor = self._cursor
        if sink is None or cursor < log.first_sequence_number:
            return False
        end = log.next_sequence_number
        if cursor >= end:
            return True  # nothing new for this one: it goes on waiting
        while cursor < end:
            batch = log.read_from(cursor, READ_BATCH)
            if not sink(batch):
                return False
            cursor = self._cursor = cursor + len(batch)
        self._heartbeat_due = False
        self.last_sent = self._service.clock()
        return True

    def restart_at(self, first: int, sequence_page: int) -> None:
        """Continue at ``first`` in a new page, with a discontinuity from what this subscription delivered."""
        pending = self._pending
        last = self._cursor - 1 if pending is None else pending.last_topic_sequence
        self._pending = Discontinuity(last, first - 1, sequence_page)
        self._cursor = first

    def wait(self) -> asyncio.Future[None]:
        """A future that resolves when `poll` may have something new (a message, a heartbeat, the end)."""
        waiter: asyncio.Future[None] = self._service.loop.create_future()
        self._waiter = waiter
        self._topic.waiting[self] = None
        return waiter

    async def next_events(self) -> list[Event]:
        """Wait for and return the next events, in order: never empty (see `poll` for what it raises)."""
        while True:
            events = self.poll()
            if events is not None:
                return events
            waiter = self.wait()
            try:
                await waiter
            finally:
                if waiter.cancelled():  # the caller was cancelled while waiting
                    self._topic.waiting.pop(self, None)

    def wake(self, heartbeat: bool = False) -> None:
        """Resolve the future `wait` returned, if pending; ``heartbeat`` makes the next `poll` send one
        when it has nothing else."""
        if heartbeat:
            self._heartbeat_due = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def end(self, error: TopicsError) -> None:
        """End this subscription: `next_events` raises ``error`` (e.g. its credentials were revoked)."""
        self._ended_by = error
        self._topic.waiting.pop(self, None)
        self.wake()

    def close(self) -> None:
        """Free the subscription at once; idempotent."""
        if self._closed:
            return
        self._closed = True
        topic = self._topic
        topic.waiting.pop(self, None)
        self.wake()
        self._service._release(self, topic)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
