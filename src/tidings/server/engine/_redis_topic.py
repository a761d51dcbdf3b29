"""One topic of the Redis engine on this node: its mirror of the topic's stream, fed by the pub/sub connection.

Following a topic (the first subscriber on a node): subscribe the channel and wait for Redis's confirmation
(live messages are buffered from then on), read the stream, then merge: history, then buffered messages not
already in it. A live message that skips sequence numbers, or carries another page, makes the mirror read the
stream again (once per node, whoever subscribes); what the stream no longer has becomes a discontinuity.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from tidings.server.core import Message, PageClock, TopicListener, TopicLog, Unavailable
from tidings.server.engine._redis_scripts import TopicKeys, decode_entry, decode_live, entry_sequence_number
from tidings.server.redis_io import Shards

_Live = tuple[int, int, str | bytes, str, int]  # page, seq, value, publisher id, size


class MirrorHost(Protocol):
    """What a topic's mirror needs of its engine (`RedisEngine`): the connections, tasks and stream reads."""

    shards: Shards
    clock: Callable[[], float]
    follow_delay: float  # a test hook: widens the window between the channel subscription and the stream read

    def spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]: ...

    async def read(self, topic: RedisTopic, first: int) -> tuple[int, int, list[Any]]: ...

    async def fence(self, topic: RedisTopic, page: int, last: int, delivered: int) -> None: ...


class RedisTopic:
    """This node's mirror (``log``, the core's `TopicLog`) of one topic's stream in Redis, and what publishing to
    the topic needs: its keys, the packed parts of its publish command and the pages to offer."""

    __slots__ = (
        "_buffer",
        "_current",
        "_following",
        "_host",
        "_moving",
        "_pages",
        "keys",
        "listener",
        "log",
        "publish_parts",
    )

    def __init__(
        self, host: MirrorHost, keys: TopicKeys, publish_parts: tuple[bytes, bytes], pages: PageClock,
        listener: TopicListener, max_count: int, max_bytes: int,
    ) -> None:  # fmt: skip
        self.log = TopicLog(0, max_count, max_bytes)  # page 0 until followed
        self._host = host
        self.keys = keys
        self.publish_parts = publish_parts
        self._pages = pages
        self.listener = listener
        self._current = False  # the mirror follows the stream
        self._following: asyncio.Task[None] | None = None
        # Live messages that arrived while the mirror reads the stream; None when not reading.
        self._buffer: list[_Live] | None = None
        self._moving: asyncio.Task[None] | None = None  # the read after the slot moved, which publishes wait for

    @property
    def following(self) -> bool:
        """Whether this node's mirror follows the topic's stream (some subscriber here needed it)."""
        return self._current

    @property
    def moving(self) -> bool:
        """Whether the topic's slot moved and the mirror has not read the stream there yet (see `settled`)."""
        return self._moving is not None

    def offer_page(self) -> int:
        """A page for a new instance, should Redis have none for the topic (greater than any issued here)."""
        return self._pages.next_page()

    def observe_page(self, page: int) -> None:
        """Redis says the topic is in ``page``: this node never offers that page or a smaller one again."""
        self._pages.observe(page)

    async def follow(self, resume_at: int) -> None:
        """Make the mirror current before a subscriber resuming at sequence number ``resume_at`` reads it."""
        if not self._host.shards.subscribed(self.keys.slot):
            raise Unavailable("Redis is unreachable")
        if self._current:
            if resume_at <= self.log.next_sequence_number:
                return
            # The subscriber saw messages this node has not received yet (they are on their way from Redis, or
            # lost): read them, so that rule 5's "from the future" is judged on what Redis has.
            await asyncio.shield(self.resync())
            return
        following = self._following
        if following is None:
            following = self._following = self._host.spawn(self._attach(), "tidings-redis-follow")
        # One subscriber giving up must not cancel the attach the others wait for.
        await asyncio.shield(following)

    async def _attach(self) -> None:
        self._buffer = []
        try:
            await self._host.shards.subscribe(self.keys.channel)
            if self._host.follow_delay:
                await asyncio.sleep(self._host.follow_delay)
            await self._catch_up()
            self._current = True
        finally:
            self._following = None
            if not self._current:
                self._buffer = None

    def receive(self, data: bytes) -> None:
        """A message from the topic's channel (the pub/sub reader calls this; it must not block)."""
        page, seq, value, publisher_id, size = decode_live(data)
        self._receive((page, seq, value, publisher_id, size))

    def _receive(self, live: _Live) -> None:
        buffer = self._buffer
        if buffer is not None:
            buffer.append(live)
            return
        log = self.log
        page, seq = live[0], live[1]
        if page == log.sequence_page:
            expected = log.next_sequence_number
            if seq < expected:
                return  # already had it
            if seq == expected:
                log.push(Message(page, seq, live[2], live[3], live[4], self._host.clock()))
                self.listener.messages_arrived()
                return
        # Sequence numbers skipped, or another page: read the stream, whose page is the truth (a smaller page too:
        # Redis lost the topic and a node with a late clock opened it). The buffer collects what arrives meanwhile.
        self._buffer = [live]
        self.resync()

    def moved(self) -> None:
        """The topic's slot moved to another Redis node: read the stream there now (publishes wait for it)."""
        self._moving = self.resync()

    async def settled(self) -> None:
        """Return once the read after a slot move (if any) is over, however it ended."""
        moving = self._moving
        if moving is not None:
            if not moving.done():
                await asyncio.wait([moving])
            if self._moving is moving:
                self._moving = None

    def resync(self) -> asyncio.Task[None]:
        """Read the stream again from where the mirror is (after a gap or a reconnect), once at a time."""
        if self._following is not None:
            return self._following
        if self._buffer is None:
            self._buffer = []
        self._following = self._host.spawn(self._resync(), "tidings-redis-backfill")
        self._host.shards.stats.backfills += 1
        return self._following

    async def _resync(self) -> None:
        try:
            await self._catch_up()
        except Unavailable:
            # Redis is away: the pub/sub supervisor calls resync again once it has resubscribed.
            self._buffer = None
            self._current = False
        finally:
            self._following = None

    async def _catch_up(self) -> None:
        """Read what the stream retains after the mirror and merge it with the buffered live messages."""
        log = self.log
        old_page = log.sequence_page
        start = log.next_sequence_number if old_page else 1
        page, last, entries = await self._host.read(self, start)
        if page != old_page and start > 1:
            # A new instance: everything it retains, not just from our old position on.
            page, last, entries = await self._host.read(self, 1)
        if page == old_page and last < log.next_sequence_number - 1:
            # Redis numbered fewer messages than this node received: a failover lost the last ones.
            await self._host.fence(self, page, last, log.next_sequence_number - 1)
        self._pages.observe(page)
        first = entry_sequence_number(entries[0][0]) if entries else last + 1
        if page != old_page or first > log.next_sequence_number:
            # Another instance, or the stream no longer has what we missed: the mirror jumps (a discontinuity).
            log.restart(page, first)
        self._push_entries(entries, self._host.clock())
        if page != old_page and old_page != 0:
            self.listener.page_changed()
        # Live messages of another page arrived before the read and are older than it: drop them.
        buffered, self._buffer = [live for live in self._buffer or () if live[0] == page], None
        self.listener.messages_arrived()
        for live in buffered:
            self._receive(live)

    def _push_entries(self, entries: list[Any], now: float) -> None:
        log = self.log
        for entry_id, fields in entries:
            seq = entry_sequence_number(entry_id)
            if seq < log.next_sequence_number:
                continue
            if seq > log.next_sequence_number:
                # A hole in the stream: messages Redis lost in a failover (see `FENCE`). The mirror holds consecutive
                # numbers only, so it jumps over the hole (subscribers behind it get a discontinuity).
                log.restart(log.sequence_page, seq)
            value, publisher_id = decode_entry(fields)
            log.push(Message(log.sequence_page, seq, value, publisher_id, len(fields[1]), now))

    def forget(self) -> None:
        """The core retired the topic: stop following it."""
        following, self._following = self._following, None
        if following is not None:
            following.cancel()
        self._current = False
        self._buffer = None
