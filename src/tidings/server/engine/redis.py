"""The Redis engine: sequence numbers, pages and retention in Redis, shared by every node; fan-out stays local.

Publishing runs one Lua script (`_redis_scripts.PUBLISH`) that numbers the message, retains it in the topic's
stream, trims by count and bytes, refreshes the TTLs and announces it on the topic's channel, atomically. Each
node keeps, for the topics its subscribers follow, a mirror of the stream (a `MemoryTopicLog`) fed by its one
pub/sub connection; subscriptions read the mirror with the core's cursors exactly as with the memory engine.

Following a topic (the first subscriber on a node): subscribe the channel and wait for Redis's confirmation
(live messages are buffered from then on), read the stream, then merge: history, then buffered messages not
already in it. A live message that skips sequence numbers, or carries another page, makes the mirror read the
stream again (once per node, whoever subscribes); what the stream no longer has becomes a discontinuity.

A Redis Cluster failover or resharding moves a topic's slot to another node (`redis_io`): the mirror reads the
stream there at once, and publishes from this node wait for that read. If the new master numbered fewer messages
than this node received (its replica had not received the last ones when the old master died), its counter is
raised to what was delivered (`_redis_scripts.FENCE`), so that new messages never reuse a number.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import urlsplit

from redis.crc import key_slot
from redis.exceptions import NoScriptError, ResponseError

from tidings.server.core import (
    EngineStats,
    Message,
    OutcomeUnknown,
    PageClock,
    RetentionUsage,
    TopicListener,
    Unavailable,
)
from tidings.server.engine._redis_scripts import (
    FENCE,
    PUBLISH,
    READ,
    TopicKeys,
    decode_entry,
    decode_live,
    entry_sequence_number,
    script_sha,
)
from tidings.server.engine.memory import MemoryTopicLog
from tidings.server.redis_io import Shards, as_list, pack_arguments, pack_command

logger = logging.getLogger("tidings.server.redis")

_Live = tuple[int, int, str | bytes, str, int]  # page, seq, value, publisher id, size


class RedisTopic(MemoryTopicLog):
    """A topic of the Redis engine: publishes go to Redis; the log is this node's mirror of the topic's stream."""

    __slots__ = (
        "_buffer",
        "_current",
        "_engine",
        "_following",
        "_listener",
        "_moving",
        "_pages",
        "keys",
        "publish_parts",
    )

    def __init__(
        self, engine: RedisEngine, keys: TopicKeys, pages: PageClock, listener: TopicListener, max_count: int,
        max_bytes: int,
    ) -> None:  # fmt: skip
        super().__init__(0, max_count, max_bytes)  # page 0 until followed
        self._engine = engine
        self.keys = keys
        self.publish_parts = engine.publish_parts(keys)
        self._pages = pages
        self._listener = listener
        self._current = False  # the mirror follows the stream
        self._following: asyncio.Task[None] | None = None
        # Live messages that arrived while the mirror reads the stream; None when not reading.
        self._buffer: list[_Live] | None = None
        self._moving: asyncio.Task[None] | None = None  # the read after the slot moved, which publishes wait for

    def publish(
        self, value: str | bytes, publisher_id: str, size: int, published_at: float
    ) -> Coroutine[Any, Any, Message]:
        return self._engine.publish(self, value, publisher_id, size, published_at)

    def follow(self, resume_at: int) -> asyncio.Future[None] | None:
        if not self._engine.shards.subscribed(self.keys.slot):
            raise Unavailable("Redis is unreachable")
        if self._current:
            if resume_at <= self._next:
                return None
            # The subscriber saw messages this node has not received yet (they are on their way from Redis, or
            # lost): read them, so that rule 5's "from the future" is judged on what Redis has.
            return asyncio.shield(self.resync())
        following = self._following
        if following is None:
            following = self._following = self._engine.spawn(self._attach(), "tidings-redis-follow")
        # One subscriber giving up must not cancel the attach the others wait for.
        return asyncio.shield(following)

    async def _attach(self) -> None:
        self._buffer = []
        try:
            await self._engine.shards.subscribe(self.keys.channel)
            if self._engine.follow_delay:
                await asyncio.sleep(self._engine.follow_delay)
            await self._catch_up()
            self._current = True
        finally:
            self._following = None
            if not self._current:
                self._buffer = None

    @property
    def following(self) -> bool:
        """Whether this node's mirror follows the topic's stream (some subscriber here needed it)."""
        return self._current

    def receive(self, data: bytes) -> None:
        """A message from the topic's channel (the pub/sub reader calls this; it must not block)."""
        page, seq, value, publisher_id, size = decode_live(data)
        self._receive((page, seq, value, publisher_id, size))

    def _receive(self, live: _Live) -> None:
        buffer = self._buffer
        if buffer is not None:
            buffer.append(live)
            return
        page, seq = live[0], live[1]
        if page == self._page:
            if seq < self._next:
                return  # already had it
            if seq == self._next:
                self.push(Message(page, seq, live[2], live[3], live[4], self._engine.clock()))
                self._listener.messages_arrived()
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
        self._following = self._engine.spawn(self._resync(), "tidings-redis-backfill")
        self._engine.stats.backfills += 1
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
        start = self._next if self._page else 1
        page, last, entries = await self._engine.read(self, start)
        if page != self._page and start > 1:
            # A new instance: everything it retains, not just from our old position on.
            page, last, entries = await self._engine.read(self, 1)
        if page == self._page and last < self._next - 1:
            # Redis numbered fewer messages than this node received: a failover lost the last ones.
            await self._engine.fence(self, page, last, self._next - 1)
        self._pages.observe(page)
        now = self._engine.clock()
        first = entry_sequence_number(entries[0][0]) if entries else last + 1
        if page != self._page:
            had_page = self._page != 0
            self.restart(page, first)
            self._push_entries(entries, now)
            if had_page:
                self._listener.page_changed()
        else:
            if first > self._next:  # the stream no longer has what we missed: the mirror jumps (a discontinuity)
                self.restart(page, first)
            self._push_entries(entries, now)
        # Live messages of another page arrived before the read and are older than it: drop them.
        buffered, self._buffer = [live for live in self._buffer or () if live[0] == page], None
        self._listener.messages_arrived()
        for live in buffered:
            self._receive(live)

    def _push_entries(self, entries: list[Any], now: float) -> None:
        for entry_id, fields in entries:
            seq = entry_sequence_number(entry_id)
            if seq < self._next:
                continue
            if seq > self._next:
                # A hole in the stream: messages Redis lost in a failover (see `FENCE`). The mirror holds consecutive
                # numbers only, so it jumps over the hole (subscribers behind it get a discontinuity).
                self.restart(self._page, seq)
            value, publisher_id = decode_entry(fields)
            self.push(Message(self._page, seq, value, publisher_id, len(fields[1]), now))

    def forget(self) -> None:
        """The core retired the topic: stop following it."""
        following, self._following = self._following, None
        if following is not None:
            following.cancel()
        self._current = False
        self._buffer = None


class RedisEngine:
    """Topics in Redis (``url``), shared by every tidings process that uses the same Redis."""

    def __init__(
        self,
        url: str,
        retention_messages: int,
        retention_bytes: int,
        topic_idle_ttl: float,
        *,
        cluster: bool = False,
        prefix: str = "tidings:",
        timeout: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        follow_delay: float = 0.0,
    ) -> None:
        self._retention_messages = retention_messages
        self._retention_bytes = retention_bytes
        # Mirrors are bounded per topic; the stream in Redis, not this process, holds what they trim.
        self.budget: RetentionUsage | None = None
        self._ttl_ms = max(1, int(topic_idle_ttl * 1000))
        self._ttl_argument = pack_arguments((self._ttl_ms,))
        self._keep_alive_every = min(topic_idle_ttl / 4, 30.0)
        self._prefix = prefix
        self._publish_command = b"SPUBLISH" if cluster else b"PUBLISH"
        self.clock = clock
        # A test hook: widens the window between the channel subscription and the stream read (race tests).
        self.follow_delay = follow_delay
        self.shards = Shards(
            url,
            cluster=cluster,
            timeout=timeout,
            deliver=self._deliver,
            resubscribed=self._resubscribed,
            moved=self._moved,
        )
        self._topics: dict[tuple[str, str], RedisTopic] = {}
        self._by_channel: dict[bytes, RedisTopic] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._keep_alive: asyncio.Task[None] | None = None
        self._shas = {script: script_sha(script) for script in (PUBLISH, READ, FENCE)}
        # Cache deletions are announced on one channel, in the store's slot.
        self._events = prefix.encode() + b"{store}:events"
        self._events_slot = key_slot(self._events)
        self._cache_deleted: Callable[[str], None] | None = None
        where = urlsplit(url)
        self.name = (
            ("redis cluster at " if cluster else "redis at ")
            + f"{where.hostname or where.path}"
            + (f":{where.port}" if where.port else "")
        )

    async def start(self) -> None:
        """Connect; raises `Unavailable` if Redis cannot be reached."""
        await self.shards.start()
        await self.shards.subscribe(self._events)
        self._keep_alive = asyncio.create_task(self._keep_topics_alive(), name="tidings-redis-keep-alive")

    async def close(self) -> None:
        """Stop following topics and close the connections."""
        tasks = [*self._tasks, *([self._keep_alive] if self._keep_alive else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.shards.close()

    @property
    def healthy(self) -> bool:
        """Whether the pub/sub connections to Redis are up (their supervisors keep reconnecting them; command
        connections reconnect on demand)."""
        return self.shards.connected

    @property
    def stats(self) -> EngineStats:
        """Round trips, connection failures, reconnects and backfills (for ``/metrics``)."""
        return self.shards.stats

    def open_topic(self, cache_name: str, topic_name: str, pages: PageClock, listener: TopicListener) -> RedisTopic:
        topic = RedisTopic(
            self,
            TopicKeys.of(self._prefix, cache_name, topic_name),
            pages,
            listener,
            self._retention_messages,
            self._retention_bytes,
        )
        self._topics[cache_name, topic_name] = topic
        self._by_channel[topic.keys.channel] = topic
        return topic

    def retire_topic(self, cache_name: str, topic_name: str) -> None:
        topic = self._topics.pop((cache_name, topic_name), None)
        if topic is None:
            return
        del self._by_channel[topic.keys.channel]
        topic.forget()
        self.shards.unsubscribe(topic.keys.channel)

    def publish_parts(self, keys: TopicKeys) -> tuple[bytes, bytes]:
        """The parts of a topic's publish command that never change, packed once (publish is the hot path):
        ``EVALSHA sha 3 <keys>`` before the per-message arguments, the limits, channel and command after."""
        head = b"*%d\r\n" % (6 + 5 + 4) + pack_arguments(  # 6 here, 5 per message, 4 in the tail
            (b"EVALSHA", self._shas[PUBLISH], 3, keys.meta, keys.stream, keys.last_page)
        )
        tail = pack_arguments((self._retention_messages, self._retention_bytes, keys.channel, self._publish_command))
        return head, tail

    async def publish(
        self, topic: RedisTopic, value: str | bytes, publisher_id: str, size: int, published_at: float
    ) -> Message:
        """Run the publish script; the message reaches this node's mirror through the channel like any other."""
        if topic._moving is not None:
            await topic.settled()  # the topic's slot moved: its counter may need a fence first
        head, tail = topic.publish_parts
        # ARGV: offered page, idle TTL, value, kind, publisher id, then the tail's.
        raw = value if isinstance(value, bytes) else value.encode()
        publisher = publisher_id.encode()
        page_offered = b"%d" % topic._pages.next_page()
        command = b"%s$%d\r\n%s\r\n%s$%d\r\n%s\r\n$1\r\n%s\r\n$%d\r\n%s\r\n%s" % (
            head, len(page_offered), page_offered, self._ttl_argument, len(raw), raw,
            b"b" if isinstance(value, bytes) else b"t", len(publisher), publisher, tail,
        )  # fmt: skip
        reply = as_list(await self._run(topic.keys.slot, PUBLISH, command))
        page = int(reply[0])  # type: ignore[call-overload]
        topic._pages.observe(page)
        return Message(page, int(reply[1]), value, publisher_id, size, published_at)  # type: ignore[call-overload]

    async def read(self, topic: RedisTopic, first: int) -> tuple[int, int, list[Any]]:
        """(page, last seq, stream entries from ``first``) of the topic, opening an instance if it has none."""
        keys = topic.keys
        command = pack_command(
            (b"EVALSHA", self._shas[READ], 3, keys.meta, keys.stream, keys.last_page, topic._pages.next_page(),
             self._ttl_ms, first)
        )  # fmt: skip
        try:
            reply = as_list(await self._run(keys.slot, READ, command))
        except OutcomeUnknown as error:  # at most an instance opened, which any retry would open: nothing unsure
            raise Unavailable(error.message) from None
        return int(reply[0]), int(reply[1]), list(reply[2])  # type: ignore[call-overload]

    async def fence(self, topic: RedisTopic, page: int, last: int, delivered: int) -> None:
        """Raise the topic's counter in Redis from ``last`` to ``delivered`` (`_redis_scripts.FENCE`)."""
        keys = topic.keys
        command = pack_command((b"EVALSHA", self._shas[FENCE], 1, keys.meta, page, delivered))
        if await self._run(keys.slot, FENCE, command) == 1:
            logger.warning(
                "Redis lost messages %d to %d of a topic (a failover to a replica that had not received them); "
                "new messages are numbered from %d on",
                last + 1,
                delivered,
                delivered + 1,
            )

    async def _run(self, slot: int, script: str, command: bytes) -> object:
        """An ``EVALSHA`` of ``script`` in ``slot`` (packed), loading the script when Redis does not have it
        (after a restart) and sending the command again."""
        try:
            return await self.shards.send_at(slot, command)
        except NoScriptError:
            pass
        except ResponseError as error:
            raise Unavailable(f"Redis refused the operation: {error}") from None
        await self.shards.call_at(slot, b"SCRIPT", b"LOAD", script)
        try:
            return await self.shards.send_at(slot, command)
        except ResponseError as error:
            raise Unavailable(f"Redis refused the operation: {error}") from None

    def spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """A task the engine owns (awaited on close); its failure is logged."""
        task = asyncio.get_running_loop().create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            error = task.exception()
            if not isinstance(error, Unavailable):
                logger.error("Redis engine task %s failed", task.get_name(), exc_info=error)

    def watch_caches(self, deleted: Callable[[str], None]) -> None:
        self._cache_deleted = deleted

    async def cache_deleted(self, cache_name: str) -> None:
        publish = b"SPUBLISH" if self.shards.cluster else b"PUBLISH"
        await self.shards.call_at(self._events_slot, publish, self._events, cache_name)

    def _deliver(self, channel: bytes, data: bytes) -> None:
        topic = self._by_channel.get(channel)
        if topic is not None:
            topic.receive(data)
        elif channel == self._events and self._cache_deleted is not None:
            self._cache_deleted(data.decode())

    def _resubscribed(self, channels: list[bytes]) -> None:
        """``channels`` were subscribed again (a pub/sub connection came back, or they moved to a new Redis
        Cluster master): their topics read what they missed from their streams."""
        for channel in channels:
            topic = self._by_channel.get(channel)
            if topic is not None:
                topic.resync()

    def _moved(self, channels: list[bytes]) -> None:
        """The slots of ``channels`` moved to another Redis Cluster node (their subscriptions follow)."""
        for channel in channels:
            topic = self._by_channel.get(channel)
            if topic is not None:
                topic.moved()

    async def _keep_topics_alive(self) -> None:
        """Refresh the TTLs of topics this node's subscribers follow (Redis retires idle topics by TTL)."""
        while True:
            await asyncio.sleep(self._keep_alive_every)
            followed = [topic for topic in self._topics.values() if topic._current]
            with contextlib.suppress(Unavailable, ResponseError):
                await asyncio.gather(
                    *(
                        self.shards.call_at(t.keys.slot, b"PEXPIRE", key, self._ttl_ms)
                        for t in followed
                        for key in (t.keys.meta, t.keys.stream)
                    )
                )
