"""The engine contract's fixtures: a topics service over each engine, and what differs between engines.

Every test in this package runs once per engine. The memory engine appends at once; the Redis engine (on a real
redis-server started for the session) numbers messages in Redis and hands them to this process's subscribers
through its pub/sub connection, so a test `settle`s after publishing: it waits (on an event, not a timer) until
the topic's followers have the message.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from redis.cluster import RedisCluster as ClusterClient

from tests._redis import RedisCluster, RedisServer
from tidings.server.core import Engine, Limits, Message, PageClock, TopicListener, TopicLog, TopicsService
from tidings.server.engine._redis_scripts import TopicKeys
from tidings.server.engine.memory import MemoryEngine
from tidings.server.engine.redis import RedisEngine
from tidings.server.redis_io import Shards

from ..unit._support import FakeClock, MemoryStore

CACHE = "cache"
TOPIC = "topic"
WALL_START = 1_700_000_000.0
ENGINES = ["memory", "redis", "redis-cluster"]
_prefixes = itertools.count(1)


class _Signalling:
    """Forwards an engine's calls to the core's topic and sets ``arrived`` on each."""

    def __init__(self, listener: TopicListener, arrived: asyncio.Event) -> None:
        self._listener = listener
        self._arrived = arrived

    @property
    def log(self) -> TopicLog:
        return self._listener.log

    def messages_arrived(self) -> None:
        self._listener.messages_arrived()
        self._arrived.set()

    def page_changed(self) -> None:
        self._listener.page_changed()
        self._arrived.set()


class SignallingRedisEngine(RedisEngine):
    """The Redis engine, signalling an event whenever a topic's mirror changes (for `Engines.settle`)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.arrived = asyncio.Event()

    async def open_topic(self, cache_name: str, topic_name: str, pages: PageClock, listener: TopicListener) -> TopicLog:
        return await super().open_topic(cache_name, topic_name, pages, _Signalling(listener, self.arrived))


@dataclass
class Engines:
    """Builds topics services over one kind of engine; services made with one ``prefix`` share their topics."""

    kind: str
    redis: RedisServer | RedisCluster | None
    clock: FakeClock = field(default_factory=lambda: FakeClock(1_000.0))
    wall_clock: FakeClock = field(default_factory=lambda: FakeClock(WALL_START))
    services: list[TopicsService] = field(default_factory=list)
    engines: list[SignallingRedisEngine] = field(default_factory=list)
    prefix: str = ""

    def __post_init__(self) -> None:
        self.prefix = f"contract{next(_prefixes)}:"

    async def make_engine(self, limits: Limits | None = None) -> Engine:
        """A started engine of this kind (closed with the fixture); Redis engines made with one ``prefix`` share
        their topics."""
        limits = limits or Limits()
        if self.kind == "memory":
            return MemoryEngine(limits.retention_messages, limits.retention_bytes)
        assert self.redis is not None
        shards = Shards(self.redis.url, cluster=self.kind == "redis-cluster")
        engine = SignallingRedisEngine(
            shards, limits.retention_messages, limits.retention_bytes, limits.topic_idle_ttl, prefix=self.prefix
        )
        await shards.start()
        await engine.start()
        self.engines.append(engine)
        return engine

    async def make_service(self, limits: Limits | None = None, store: MemoryStore | None = None) -> TopicsService:
        """A started service with the cache ``CACHE``."""
        limits = limits or Limits()
        engine = await self.make_engine(limits)
        service = TopicsService(engine, store or MemoryStore(), limits, clock=self.clock, wall_clock=self.wall_clock)
        await service.start()
        self.services.append(service)
        if not service.has_cache(CACHE):
            await service.create_cache(CACHE)
        return service

    async def settle(self, message: Message, topic_name: str = TOPIC) -> None:
        """Return once every service that follows the topic holds ``message`` (at once for the memory engine)."""
        for engine in self.engines:
            mirror = engine._by_channel.get(TopicKeys.of(self.prefix, CACHE, topic_name).channel)
            if mirror is None or not mirror.following:
                continue
            log = mirror.log
            while (log.sequence_page, log.next_sequence_number) <= (message.sequence_page, message.sequence_number):
                engine.arrived.clear()
                await engine.arrived.wait()

    async def expire(self, service: TopicsService, topic_name: str = TOPIC) -> int:
        """Retire the topic as its idle TTL does: in the service and, for Redis, in Redis too."""
        retired = await service.retire_idle_topics(self.clock.advance(service.limits.topic_idle_ttl))
        keys = TopicKeys.of(self.prefix, CACHE, topic_name)
        if isinstance(self.redis, RedisServer):
            with self.redis.client() as client:
                client.delete(keys.meta, keys.stream)
        elif isinstance(self.redis, RedisCluster):
            with ClusterClient.from_url(self.redis.url, protocol=2) as client:
                client.delete(keys.meta, keys.stream)
        return retired

    async def close(self) -> None:
        for service in self.services:
            await service.close()
        for engine in self.engines:
            await engine.close()
            await engine.shards.close()


@pytest.fixture(params=ENGINES)
async def engines(request: pytest.FixtureRequest) -> AsyncIterator[Engines]:
    """Services over each engine in turn."""
    fixture = {"redis": "redis_server", "redis-cluster": "redis_cluster"}.get(request.param)
    redis = request.getfixturevalue(fixture) if fixture else None
    built = Engines(request.param, redis)
    yield built
    await built.close()
