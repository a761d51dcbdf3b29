"""The Redis engine: sequence numbers, pages and retention in Redis, shared by every node; fan-out stays local.

Publishing runs one Lua script (`_redis_scripts.PUBLISH`) that numbers the message, retains it in the topic's
stream, trims by count and bytes, refreshes the TTLs and announces it on the topic's channel, atomically. Each
node keeps, for the topics its subscribers follow, a mirror of the stream (the core's `TopicLog`, kept by a
`RedisTopic`) fed by its one pub/sub connection; subscriptions read the mirror with the core's cursors exactly as
with the memory engine.

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

from redis.crc import key_slot
from redis.exceptions import NoScriptError, ResponseError

from tidings.server.core import (
    EngineStatus,
    Message,
    OutcomeUnknown,
    PageClock,
    Position,
    TopicListener,
    TopicLog,
    Unavailable,
)
from tidings.server.engine._redis_scripts import (
    FENCE,
    PUBLISH,
    READ,
    TopicKeys,
    script_sha,
)
from tidings.server.engine._redis_topic import RedisTopic
from tidings.server.redis_io import Shards, as_list, pack_arguments, pack_command

logger = logging.getLogger("tidings.server.redis")


class RedisEngine:
    """Topics in Redis, shared by every tidings process that uses the same Redis.

    It runs on ``shards``, connections its owner (the Redis backend) starts after this engine listens on them,
    and closes after `close`.
    """

    def __init__(
        self,
        shards: Shards,
        retention_messages: int,
        retention_bytes: int,
        topic_idle_ttl: float,
        *,
        prefix: str = "tidings:",
        clock: Callable[[], float] = time.monotonic,
        follow_delay: float = 0.0,
    ) -> None:
        self._retention_messages = retention_messages
        self._retention_bytes = retention_bytes
        self._ttl_ms = max(1, int(topic_idle_ttl * 1000))
        self._ttl_argument = pack_arguments((self._ttl_ms,))
        self._keep_alive_every = min(topic_idle_ttl / 4, 30.0)
        self._prefix = prefix
        self._publish_command = b"SPUBLISH" if shards.cluster else b"PUBLISH"
        self.clock = clock
        # A test hook: widens the window between the channel subscription and the stream read (race tests).
        self.follow_delay = follow_delay
        self.shards = shards
        shards.listen(self._deliver, self._resubscribed, self._moved)
        self._topics: dict[TopicLog, RedisTopic] = {}  # by the mirror the core reads
        self._by_channel: dict[bytes, RedisTopic] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._keep_alive: asyncio.Task[None] | None = None
        self._shas = {script: script_sha(script) for script in (PUBLISH, READ, FENCE)}
        # Cache deletions are announced on one channel, in the store's slot.
        self._events = prefix.encode() + b"{store}:events"
        self._events_slot = key_slot(self._events)
        self._cache_deleted: Callable[[str], None] | None = None

    async def start(self) -> None:
        """Follow cache deletions and keep topics alive (the shards are started); raises `Unavailable` if Redis
        cannot be reached."""
        await self.shards.subscribe(self._events)
        self._keep_alive = asyncio.create_task(self._keep_topics_alive(), name="tidings-redis-keep-alive")

    async def close(self) -> None:
        """Stop following topics (the shards' owner closes the connections after)."""
        tasks = [*self._tasks, *([self._keep_alive] if self._keep_alive else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def status(self) -> EngineStatus:
        """Healthy while the pub/sub connections to Redis are up (their supervisors keep reconnecting them;
        command connections reconnect on demand); round trips, connection failures, reconnects and backfills."""
        return EngineStatus(self.shards.connected, self.shards.stats)

    async def open_topic(self, cache_name: str, topic_name: str, pages: PageClock, listener: TopicListener) -> TopicLog:
        """The topic's mirror on this node, empty until a subscriber follows it (publishing needs none)."""
        keys = TopicKeys.of(self._prefix, cache_name, topic_name)
        topic = RedisTopic(
            self, keys, self.publish_parts(keys), pages, listener, self._retention_messages, self._retention_bytes
        )
        self._topics[topic.log] = topic
        # A mirror of an earlier instance whose retirement is on its way no longer receives the channel.
        self._by_channel[keys.channel] = topic
        return topic.log

    async def retire_topic(self, topic: TopicListener) -> None:
        """Stop following the topic (and its channel, unless it was opened again since)."""
        mirror = self._topics.pop(topic.log, None)
        if mirror is None:
            return
        channel = mirror.keys.channel
        if self._by_channel.get(channel) is mirror:
            del self._by_channel[channel]
            self.shards.unsubscribe(channel)
        mirror.forget()

    async def follow(self, topic: TopicListener, resume_at: Position) -> None:
        """Subscribe the topic's channel and read its stream into the mirror, or read what ``resume_at`` is
        ahead of it; raises `Unavailable` when Redis cannot be reached."""
        await self._topics[topic.log].follow(resume_at.sequence_number)

    def publish_parts(self, keys: TopicKeys) -> tuple[bytes, bytes]:
        """The parts of a topic's publish command that never change, packed once (publish is the hot path):
        ``EVALSHA sha 3 <keys>`` before the per-message arguments, the limits, channel and command after."""
        head = b"*%d\r\n" % (6 + 5 + 4) + pack_arguments(  # 6 here, 5 per message, 4 in the tail
            (b"EVALSHA", self._shas[PUBLISH], 3, keys.meta, keys.stream, keys.last_page)
        )
        tail = pack_arguments((self._retention_messages, self._retention_bytes, keys.channel, self._publish_command))
        return head, tail

    async def publish(
        self, topic: TopicListener, value: str | bytes, publisher_id: str, size: int, published_at: float
    ) -> Message:
        """Run the publish script; the message reaches this node's mirror through the channel like any other."""
        mirror = self._topics[topic.log]
        if mirror.moving:
            await mirror.settled()  # the topic's slot moved: its counter may need a fence first
        head, tail = mirror.publish_parts
        # ARGV: offered page, idle TTL, value, kind, publisher id, then the tail's.
        raw = value if isinstance(value, bytes) else value.encode()
        publisher = publisher_id.encode()
        page_offered = b"%d" % mirror.offer_page()
        command = b"%s$%d\r\n%s\r\n%s$%d\r\n%s\r\n$1\r\n%s\r\n$%d\r\n%s\r\n%s" % (
            head, len(page_offered), page_offered, self._ttl_argument, len(raw), raw,
            b"b" if isinstance(value, bytes) else b"t", len(publisher), publisher, tail,
        )  # fmt: skip
        reply = as_list(await self._run(mirror.keys.slot, PUBLISH, command))
        page = int(reply[0])  # type: ignore[call-overload]
        mirror.observe_page(page)
        return Message(page, int(reply[1]), value, publisher_id, size, published_at)  # type: ignore[call-overload]

    async def read(self, topic: RedisTopic, first: int) -> tuple[int, int, list[Any]]:
        """(page, last seq, stream entries from ``first``) of the topic, opening an instance if it has none."""
        keys = topic.keys
        command = pack_command(
            (b"EVALSHA", self._shas[READ], 3, keys.meta, keys.stream, keys.last_page, topic.offer_page(),
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

    async def watch_caches(self, deleted: Callable[[str], None]) -> None:
        """Call ``deleted`` with each cache deletion another node announces."""
        self._cache_deleted = deleted

    async def cache_deleted(self, cache_name: str) -> None:
        """Announce the deletion to every node (on the store's events channel)."""
        await self.shards.call_at(self._events_slot, self._publish_command, self._events, cache_name)

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
            followed = [topic for topic in self._topics.values() if topic.following]
            with contextlib.suppress(Unavailable, ResponseError):
                await asyncio.gather(
                    *(
                        self.shards.call_at(t.keys.slot, b"PEXPIRE", key, self._ttl_ms)
                        for t in followed
                        for key in (t.keys.meta, t.keys.stream)
                    )
                )
