"""The topic instances live in this process, and their life in the engine: opened on first use, retired when idle
or when their cache is deleted."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tidings.server.core._errors import CacheNotFound, Limit, LimitExceeded, TopicsError
from tidings.server.core._heartbeats import HeartbeatWheel
from tidings.server.core._pages import PageClock
from tidings.server.core._ports import Engine
from tidings.server.core._topics import CacheState, Cursor, TopicInstance


class LiveTopics:
    """The live topic instances by (cache, topic) in ``topics`` (read directly on the publish path), each with the
    log its engine opened; dropping one forgets its log and has the engine retire it. Their parked subscriptions
    get heartbeats every ``heartbeat_interval`` seconds of silence (`tick_heartbeats`)."""

    def __init__(
        self,
        engine: Engine,
        pages: PageClock,
        clock: Callable[[], float],
        released: Callable[[Cursor], None],
        heartbeat_interval: float,
    ) -> None:
        self.topics: dict[tuple[str, str], TopicInstance] = {}
        self.heartbeats = HeartbeatWheel(heartbeat_interval)
        self._engine = engine
        self._pages = pages
        self._clock = clock
        self._released = released  # told of each subscription closed (`TopicInstance.release`)
        self._retiring: set[asyncio.Task[None]] = set()  # engine retirements of a deleted cache's topics

    async def open(
        self, cache: CacheState, topic_name: str, max_topics: int, caches_now: Callable[[], bool]
    ) -> TopicInstance:
        """Open a topic instance of ``cache`` in the engine and make it live (``max_topics`` live per cache).

        ``caches_now`` tells whether the cache still exists, after an engine that suspended while opening."""
        if len(cache.topics) >= max_topics:
            raise LimitExceeded(Limit.TOPIC_COUNT, f"topic limit exceeded: at most {max_topics} live topics per cache")
        topic = TopicInstance(cache, topic_name, self._clock, self._released, self.heartbeats)
        topic.log = await self._engine.open_topic(cache.name, topic_name, self._pages, topic)
        opened = self.topics.get((cache.name, topic_name))
        if opened is not None or not caches_now():
            # The engine suspended: another request opened the topic meanwhile, or the cache was deleted.
            topic.log.forget()
            await self._engine.retire_topic(topic)
            if opened is None:
                raise CacheNotFound(cache.name)
            return opened
        self.topics[cache.name, topic_name] = topic
        cache.topics.add(topic_name)
        return topic

    async def retire_idle(self, now: float, ttl: float) -> int:
        """Retire the instances with no subscribers and no publishes for ``ttl``; returns how many."""
        idle = [key for key, topic in self.topics.items() if not topic.in_use and now - topic.last_active >= ttl]
        for topic in [self._drop(key) for key in idle]:
            await self._engine.retire_topic(topic)
        return len(idle)

    def tick_heartbeats(self, now: float) -> int:
        """Send a heartbeat to every waiting subscription that sent nothing for the interval; returns how many.

        Only the due ones are looked at (`HeartbeatWheel`). A parked subscription whose writer takes it now gets
        it written from here (`heartbeat_from_ticker`: on the h2 transport, one socket write per connection per
        tick, whatever its number of streams); any other is woken to send it."""
        return self.heartbeats.tick(now)

    def cache_deleted(self, cache: CacheState) -> None:
        """End the subscriptions of ``cache``'s topics with NOT_FOUND and retire them (the engine right after: this
        is called synchronously, also from the engine's announcement of another server's deletion)."""
        dropped = [self._drop((cache.name, name), CacheNotFound(cache.name)) for name in list(cache.topics)]
        if dropped:
            task = asyncio.get_running_loop().create_task(self._retire(dropped), name="tidings-retire-topics")
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)

    async def close(self, error: TopicsError) -> None:
        """End every subscription with ``error`` (the engine is closed after the core: nothing to retire)."""
        for topic in self.topics.values():
            topic.close(error)
        self.topics.clear()
        self.heartbeats.clear()
        if self._retiring:
            await asyncio.wait(self._retiring)

    def _drop(self, key: tuple[str, str], error: TopicsError | None = None) -> TopicInstance:
        """Take the instance out of service and forget its log; the caller has the engine retire it."""
        topic = self.topics.pop(key)
        topic.cache.topics.discard(key[1])
        if error is not None:
            topic.close(error)
        topic.log.forget()
        return topic

    async def _retire(self, topics: list[TopicInstance]) -> None:
        for topic in topics:
            await self._engine.retire_topic(topic)
