"""`TopicCursor`: one subscriber's position in a topic instance, and its delivery to a transport's writer.

A subscription is a cursor into its topic instance's retention buffer, not a queue: publishing appends once and
wakes the cursors that are waiting; each reads at its own pace. One that falls behind the buffer gets a
discontinuity, so a slow subscriber costs nothing but its cursor (README *Subscriptions, resume and
discontinuities*).
"""

from __future__ import annotations

import asyncio
from typing import Any, Final, NoReturn

from tidings.server.core._auth import Principal
from tidings.server.core._delivery import Chunk, Delivery, Encoder, Writer
from tidings.server.core._errors import TopicsError
from tidings.server.core._events import HEARTBEAT, Discontinuity, Event
from tidings.server.core._heartbeats import Link
from tidings.server.core._stats import TransportStats
from tidings.server.core._topics import TopicInstance

# How many messages one read hands a subscriber: bounds what a slow subscriber holds on to.
READ_BATCH: Final = 32


class TopicCursor:
    """One subscriber's position in a topic instance.

    Transports hand it a writer and an encoder (`deliver`, or `deliver_first` for one answer); `next_events`
    reads it directly. Create cursors with `TopicsService.subscribe`; always `close` them (a ``with`` block does).
    """

    __slots__ = (
        "_closed",
        "_cursor",
        "_ended_by",
        "_heartbeat_due",
        "_pending",
        "_topic",
        "direct",
        "heartbeat_next",
        "heartbeat_prev",
        "last_sent",
        "principal",
        "waiter",
    )

    def __init__(
        self, topic: TopicInstance, cursor: int, pending: Discontinuity | None, now: float, principal: Principal
    ) -> None:
        self._topic = topic
        self._cursor = cursor
        self._pending = pending
        self.waiter: asyncio.Future[None] | None = None  # what `wait` returned (resolved by `wake`)
        self._heartbeat_due = False
        self._closed = False
        self._ended_by: TopicsError | None = None
        self.last_sent = now
        # Its place in the `HeartbeatWheel` while it is in a bucket (`TopicInstance.park`).
        self.heartbeat_next: Link | None = None
        self.heartbeat_prev: Link | None = None
        self.principal = principal
        # The delivery the publish writes to directly while this cursor is parked (`deliver_from_publish`): set
        # once its writer has written without waiting (the preamble, or a batch).
        self.direct: Delivery[Any] | None = None

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
        """The page of the topic instance this cursor reads."""
        return self._topic.log.sequence_page

    @property
    def next_sequence_number(self) -> int:
        """The sequence number of the next message this cursor will deliver."""
        return self._cursor

    @property
    def backlog(self) -> int:
        """How many published messages this cursor has not read yet (its lag, in messages)."""
        return max(0, self._topic.log.next_sequence_number - self._cursor)

    def take_ready(self) -> list[Event] | None:
        """The events ready now, in order (never empty), moving the cursor past them; or None: then await `wait`.

        Raises the `TopicsError` that ended the subscription (cache deleted, server shutting down, credentials
        revoked), or `RuntimeError` once it is closed.
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
            self.last_sent = topic.clock()
            return events
        if self._heartbeat_due:
            self._heartbeat_due = False
            self.last_sent = topic.clock()
            return [HEARTBEAT]
        return None

    def deliver_from_publish(self) -> bool:
        """Write the messages after the cursor to `direct`, from the publish (`TopicInstance.messages_arrived`):
        True when this cursor stays parked; False when its reader must be woken (no direct delivery, the writer
        cannot take them now, or there is a discontinuity or an end to tell)."""
        direct = self._push_path()
        if direct is None:
            return False
        topic = self._topic
        log = topic.log
        cursor = self._cursor
        if cursor < log.first_sequence_number:
            return False
        end = log.next_sequence_number
        if cursor >= end:
            return True  # nothing new for this one: it goes on waiting
        while cursor < end:
            batch = log.read_from(cursor, READ_BATCH)
            if not direct.write_published(batch):
                return False
            cursor = self._cursor = cursor + len(batch)
        self._heartbeat_due = False
        self.last_sent = topic.clock()
        return True

    def _push_path(self) -> Delivery[Any] | None:
        """`direct`, when this cursor may be written to from outside its reader: it has one, and no
        discontinuity, end or close is waiting for the reader to tell."""
        direct = self.direct
        if direct is None or self._pending is not None or self._ended_by is not None or self._closed:
            return None
        return None if self._topic.closed_by is not None else direct

    def heartbeat_from_ticker(self, now: float) -> bool:
        """Write a heartbeat to `direct` from the heartbeat ticker, with no task woken: True when this cursor stays
        parked; False when its reader must be woken to send it (no direct delivery, the writer cannot take it now,
        or the cursor has something else to tell)."""
        direct = self._push_path()
        topic = self._topic
        if direct is None or self._cursor != topic.log.next_sequence_number or not direct.write_heartbeat():
            return False
        self._heartbeat_due = False
        self.last_sent = now  # the ticker's time (the service's clock, read once per tick)
        return True

    @property
    def parked(self) -> bool:
        """Whether this cursor is among its topic instance's waiting cursors (`wait` put it there; a wake took
        it out)."""
        return self in self._topic.waiting

    def wake_for_heartbeat(self) -> None:
        """Stop waiting, and wake the reader to send a heartbeat (the ticker's, when `heartbeat_from_ticker`
        could not write it)."""
        self._topic.waiting.pop(self, None)
        self.wake(heartbeat=True)

    async def deliver(
        self, writer: Writer[Chunk], encoder: Encoder[Chunk], stats: TransportStats | None = None
    ) -> NoReturn:
        """Deliver to ``writer`` until the subscription ends: ``encoder.preamble`` first, then every event, in
        order. Raises the `TopicsError` that ended it (see `take_ready`); cancel it to stop.

        Once ``writer`` has written without waiting (the preamble, or a batch), new messages and heartbeats are
        written from the publish and the ticker while this cursor is parked (the push path); otherwise, and
        whenever it cannot, the reader delivers.
        """
        delivery = Delivery(writer, encoder, stats, self._topic.clock)
        preamble = encoder.preamble
        if preamble is not None:
            # Written without waiting, it opens the push path at once: an idle subscription's first heartbeat is
            # then the ticker's write, not its reader woken (measured: a third of the idle heartbeats in a 30 s
            # window with 100,000 new subscriptions went through their readers).
            if writer.try_write((preamble,)):
                self.direct = delivery
            else:
                await writer.write_all((preamble,))
            if stats is not None:
                stats.heartbeats += 1
        encode = encoder.encode
        take_ready = self.take_ready
        wait = self.wait
        try_write = writer.try_write
        clock = self._topic.clock
        while True:
            events = take_ready()
            if events is None:
                await wait()
                continue
            chunks = encode(events)
            if try_write(chunks):
                self.direct = delivery
            else:
                await writer.write_all(chunks)
            if stats is not None:
                stats.count_delivered(events, clock())

    async def deliver_first(
        self, writer: Writer[Chunk], encoder: Encoder[Chunk], stats: TransportStats | None = None, reads: int = 1
    ) -> None:
        """Deliver one batch: wait for messages or a discontinuity (heartbeats are not delivered), then write them
        with what else up to ``reads`` reads hold at once, in one write (a long poll's answer)."""
        take_ready = self.take_ready
        while True:
            events = take_ready()
            if events is None:
                await self.wait()
            elif events[0] is not HEARTBEAT:
                break
        for _ in range(reads - 1):
            more = take_ready()
            if more is None or more[0] is HEARTBEAT:
                break
            events += more
        chunks = encoder.encode(events)
        if not writer.try_write(chunks):
            await writer.write_all(chunks)
        if stats is not None:
            stats.count_delivered(events, self._topic.clock())

    def restart_at(self, first: int, sequence_page: int) -> None:
        """Continue at ``first`` in a new page, with a discontinuity from what this cursor delivered."""
        pending = self._pending
        last = self._cursor - 1 if pending is None else pending.last_topic_sequence
        self._pending = Discontinuity(last, first - 1, sequence_page)
        self._cursor = first

    def wait(self) -> asyncio.Future[None]:
        """A future that resolves when `take_ready` may have something new (a message, a heartbeat, the end)."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiter = waiter
        self._topic.park(self)
        return waiter

    async def next_events(self) -> list[Event]:
        """Wait for and return the next events, in order: never empty (see `take_ready` for what it raises)."""
        while True:
            events = self.take_ready()
            if events is not None:
                return events
            waiter = self.wait()
            try:
                await waiter
            finally:
                if waiter.cancelled():  # the caller was cancelled while waiting
                    self._topic.waiting.pop(self, None)

    def wake(self, heartbeat: bool = False) -> None:
        """Resolve the future `wait` returned, if pending; ``heartbeat`` makes the next `take_ready` return one
        when it has nothing else."""
        if heartbeat:
            self._heartbeat_due = True
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def end(self, error: TopicsError) -> None:
        """End this subscription: `take_ready` raises ``error`` (e.g. its credentials were revoked)."""
        self._ended_by = error
        self._topic.waiting.pop(self, None)
        self.wake()

    def close(self) -> None:
        """Free the cursor at once; idempotent."""
        if self._closed:
            return
        self._closed = True
        self.wake()
        self._topic.release(self)

    def __enter__(self) -> TopicCursor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
