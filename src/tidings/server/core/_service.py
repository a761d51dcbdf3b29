"""The topics service: caches, topic instances, publish and subscribe, heartbeats and retirement."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable

from tidings.server.core._admission import denied, measure, rate_limited, require_super_user, too_many_subscriptions
from tidings.server.core._auth import ANONYMOUS, Principal, TopicPermission
from tidings.server.core._caches import CacheDirectory
from tidings.server.core._cursor import TopicCursor
from tidings.server.core._errors import (
    CacheNotFound,
    TopicsError,
    Unauthenticated,
    Unavailable,
)
from tidings.server.core._events import Message
from tidings.server.core._limits import Limits, TokenBucket
from tidings.server.core._live_topics import LiveTopics
from tidings.server.core._names import validate_name
from tidings.server.core._page_floor import PageFloor
from tidings.server.core._ports import Engine, Store
from tidings.server.core._position import Position, resume_position
from tidings.server.core._stats import EngineStatus, TransportStats
from tidings.server.core._topics import CacheState, Cursor, TopicInstance

logger = logging.getLogger("tidings.server")

NO_POSITION = Position(0, 0)  # a subscription that names none: the newest retained messages, then live


class TopicsService:
    """The rules of caches, topics and subscriptions (README *Subscriptions, resume and discontinuities*), over
    an engine and a store.

    Transports call `publish`, `subscribe` and the cache operations; `run_housekeeping` (or, in tests,
    `tick_heartbeats` and `retire_idle_topics` with an explicit clock) keeps heartbeats and TTLs.

    With a shared store (several servers on one Redis), the store is the one directory of caches: listing,
    looking up and deleting read it, and this process's own view of the caches (what publish and subscribe
    check) follows it within ``cache_refresh_interval`` seconds, besides the engine's announcement of each
    deletion (see `CacheDirectory`; ``sleep`` is how it and the housekeeping wait, stepped in tests).
    """

    def __init__(
        self,
        engine: Engine,
        store: Store,
        limits: Limits | None = None,
        *,
        heartbeat_interval: float = 10.0,
        subscribe_latest: int = 1,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        cache_refresh_interval: float = 0.5,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not (0 < heartbeat_interval < math.inf):
            raise ValueError("heartbeat_interval must be positive and finite")
        if subscribe_latest < 0:
            raise ValueError("subscribe_latest must not be negative")
        self.subscribe_latest = subscribe_latest
        self.limits = limits or Limits()
        self.heartbeat_interval = heartbeat_interval
        self.clock = clock
        self._engine = engine
        self._store = store
        self._wall_clock = wall_clock
        self._page_floor = PageFloor(store, wall_clock)
        self._sleep = sleep
        self._caches = CacheDirectory(
            store, self._new_cache_state, self._cache_forgotten, refresh_interval=cache_refresh_interval, sleep=sleep
        )
        self._live = LiveTopics(engine, self._page_floor.pages, clock, self._released, heartbeat_interval)
        self._topics = self._live.topics
        self._transport_stats: dict[str, TransportStats] = {}
        # Subscriptions whose credentials can expire or be revoked.
        self._revocable: dict[Cursor, None] = {}
        self._closing = False
        self._draining = False
        self._subscription_released = asyncio.Event()
        self._cache_deleted: list[Callable[[str], None]] = []
        self._started = False
        self.loop: asyncio.AbstractEventLoop  # set by start()

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Load caches and the page floor from the store."""
        self.loop = asyncio.get_running_loop()
        await self._caches.load()
        await self._page_floor.load()
        await self._engine.watch_caches(self._caches.deleted)  # another process sharing the store deleted one
        self._caches.follow()
        self._started = True

    @property
    def draining(self) -> bool:
        """Whether `start_draining` was called: new publishes and subscriptions are refused."""
        return self._draining

    def start_draining(self) -> None:
        """Refuse new publishes and subscriptions (UNAVAILABLE) while the open subscriptions go on."""
        self._draining = True

    async def wait_subscriptions_ended(self) -> None:
        """Return once no subscription is open (while draining: the clients have finished)."""
        while self.subscription_total():
            self._subscription_released.clear()
            await self._subscription_released.wait()

    async def close(self) -> None:
        """End every subscription with UNAVAILABLE and record the page floor; idempotent."""
        if self._closing:
            return
        self._closing = True
        await self._caches.close()
        await self._live.close(Unavailable("server is shutting down"))
        if self._started:
            await self._page_floor.save_last()

    async def run_housekeeping(self) -> None:
        """Send idle heartbeats and retire idle topics until cancelled; one task serves every stream. Ticks keep a
        beat, and heartbeats take its time (wake-up jitter pushed some a beat late); a stall restarts the beat."""
        sweep_every = min(self.limits.topic_idle_ttl / 4, 30.0)
        tick = min(self.heartbeat_interval / 4, sweep_every, 1.0)
        last_sweep = due = self.clock()
        while True:
            due += tick
            await self._sleep(max(tick / 8, due - self.clock()))  # never back to back: the loop's traffic first
            now = self.clock()
            if now - due >= tick:
                due = now
            self.tick_heartbeats(due if now - due < tick / 8 else now)  # late: the time it is
            if self._revocable:
                self.expire_subscriptions(self._wall_clock())
            if now - last_sweep >= sweep_every:
                last_sweep = now
                await self.retire_idle_topics(now)
                try:
                    await self._page_floor.save_ahead()
                except Exception:
                    logger.exception("could not record the sequence page floor; will retry")

    def tick_heartbeats(self, now: float) -> int:
        """Wake, with a heartbeat, every waiting subscription that sent nothing for the interval."""
        return self._live.tick_heartbeats(now)

    async def retire_idle_topics(self, now: float) -> int:
        """Retire topic instances with no subscribers and no publishes for the idle TTL."""
        return await self._live.retire_idle(now, self.limits.topic_idle_ttl)

    # --- caches ----------------------------------------------------------------------------------

    async def list_caches(self, principal: Principal = ANONYMOUS) -> list[str]:
        """The names of all caches, sorted; needs a super-user. A shared store is read: every server answers
        the same."""
        require_super_user(principal)
        return await self._caches.names()

    async def inspect_cache(self, cache_name: str, principal: Principal = ANONYMOUS) -> int:
        """How many subscriptions this process has open on the cache; needs a super-user; `CacheNotFound` if
        it does not exist (in a shared store: as the store says now)."""
        validate_name("cache_name", cache_name)
        require_super_user(principal)
        if not await self.find_cache(cache_name):
            raise CacheNotFound(cache_name)
        return self.subscription_count(cache_name)

    def cache_count(self) -> int:
        """How many caches this process knows of (with a shared store: as of its last refresh)."""
        return len(self._caches)

    def has_cache(self, cache_name: str) -> bool:
        """Whether this process knows the cache (with a shared store: as of its last refresh)."""
        return cache_name in self._caches

    async def find_cache(self, cache_name: str) -> bool:
        """Whether the cache exists; a shared store is asked, so a cache another server created or deleted
        counts as the store says now."""
        return await self._caches.find(cache_name) is not None

    def on_cache_deleted(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(cache_name)`` after each cache this service deletes or learns was deleted (webhooks go
        with it)."""
        self._cache_deleted.append(callback)

    async def create_cache(self, cache_name: str, principal: Principal = ANONYMOUS) -> None:
        """Create a cache (stored, so it survives restarts); needs a super-user.

        `CacheAlreadyExists` if it exists, also when another server sharing the store created it; the cache limit
        counts every cache of the store.
        """
        validate_name("cache_name", cache_name)
        require_super_user(principal)
        await self._caches.create(cache_name, self.limits.max_caches)

    async def delete_cache(self, cache_name: str, principal: Principal = ANONYMOUS) -> None:
        """Delete a cache, retiring its topics and ending their subscriptions with NOT_FOUND; needs a super-user.

        With a shared store, any server deletes any cache, and every server's subscriptions to it end.
        """
        validate_name("cache_name", cache_name)
        require_super_user(principal)
        await self._caches.delete(cache_name)
        await self._engine.cache_deleted(cache_name)

    async def refresh_caches(self) -> None:
        """Make this process's view of the caches what the shared store holds now: learn the caches other
        servers created, and forget those they deleted, ending their subscriptions as a deletion here does."""
        await self._caches.refresh()

    def _cache_forgotten(self, cache: CacheState) -> None:
        """``cache`` was deleted (here or elsewhere): end its topics' subscriptions, and tell who listens."""
        self._live.cache_deleted(cache)
        for callback in self._cache_deleted:
            callback(cache.name)

    # --- topics ----------------------------------------------------------------------------------

    async def publish(
        self, cache_name: str, topic_name: str, value: str | bytes, principal: Principal = ANONYMOUS
    ) -> Message:
        """Append ``value`` to the topic and wake its subscribers; returns the numbered message.

        The message carries the principal's ``token_id`` as its publisher id. Checks run in this order: the
        request itself (names, value), then permission, then the cache's existence, then limits.
        """
        if self._draining:
            raise Unavailable("server is restarting: publish again shortly")
        size = measure(value, self.limits.max_message_bytes)
        topic = self._topics.get((cache_name, topic_name))
        if topic is None:
            cache = await self._authorized_cache(cache_name, topic_name, principal, TopicPermission.PUBLISH)
            topic = self._topics.get((cache_name, topic_name)) or await self._open_topic(cache, topic_name)
        elif not principal.may(TopicPermission.PUBLISH, cache_name, topic_name):
            raise denied(TopicPermission.PUBLISH, cache_name, topic_name)
        now = self.clock()
        bucket = topic.cache.publish_bucket
        if bucket is not None and not bucket.try_take(now):
            raise rate_limited(self.limits.publish_rate_per_cache)
        topic.last_active = now
        # A local engine numbers the message and wakes the subscribers without suspending; a shared one answers
        # once its backend numbered it.
        return await self._engine.publish(topic, value, principal.token_id, size, now)

    async def subscribe(
        self,
        cache_name: str,
        topic_name: str,
        resume_at: Position | None = None,
        principal: Principal = ANONYMOUS,
        *,
        latest: int | None = None,
    ) -> TopicCursor:
        """Start a subscription where README *Subscriptions, resume and discontinuities* says (`resume_position`).

        Without a resume position it starts with the newest ``latest`` retained messages (default: the
        service's ``subscribe_latest``; 0 is live only, as a webhook starts).
        """
        if self._draining:
            raise Unavailable("server is restarting: subscribe again shortly")
        topic = self._topics.get((cache_name, topic_name))
        if topic is None:
            cache = await self._authorized_cache(cache_name, topic_name, principal, TopicPermission.SUBSCRIBE)
            topic = self._topics.get((cache_name, topic_name))
        elif not principal.may(TopicPermission.SUBSCRIBE, cache_name, topic_name):
            raise denied(TopicPermission.SUBSCRIBE, cache_name, topic_name)
        else:
            cache = topic.cache
        if cache.subscriptions >= self.limits.max_subscriptions_per_cache:
            raise too_many_subscriptions(self.limits.max_subscriptions_per_cache)
        if topic is None:
            topic = await self._open_topic(cache, topic_name)
        resume = resume_at or NO_POSITION
        # Reserve the subscription while the engine catches up (a shared one suspends), so the topic is neither
        # retired nor over the limit meanwhile.
        cache.subscriptions += 1
        topic.joining += 1
        try:
            await self._engine.follow(topic, resume)
        finally:
            cache.subscriptions -= 1
            topic.joining -= 1
        if topic.closed_by is not None:
            raise topic.closed_by
        log = topic.log
        cursor, pending = resume_position(
            log.sequence_page,
            log.first_sequence_number,
            log.next_sequence_number,
            resume,
            self.subscribe_latest if latest is None else latest,
        )
        subscription = TopicCursor(topic, cursor, pending, self.clock(), principal)
        topic.add(subscription)
        if principal.is_revocable:
            self._revocable[subscription] = None
        return subscription

    def revoke_key(self, key_id: str) -> int:
        """End, with UNAUTHENTICATED, every subscription made with API key ``key_id``; returns how many."""
        return self._end_subscriptions(
            lambda principal: principal.key_id == key_id, Unauthenticated("the API key was revoked")
        )

    def revoke_token(self, token_id: str, minted_until: float) -> int:
        """End, with UNAUTHENTICATED, every subscription made with a disposable token whose id is ``token_id``
        and that was minted at or before ``minted_until`` (epoch seconds); returns how many."""
        return self._end_subscriptions(
            lambda principal: (
                principal.token_id == token_id
                and principal.issued_at is not None
                and principal.issued_at <= minted_until
            ),
            Unauthenticated("the token was revoked"),
        )

    def expire_subscriptions(self, now: float) -> int:
        """End, with UNAUTHENTICATED, subscriptions whose credentials expired by ``now`` (epoch seconds)."""
        return self._end_subscriptions(
            lambda principal: principal.expires_at is not None and principal.expires_at <= now,
            Unauthenticated("the token expired"),
        )

    def _end_subscriptions(self, matches: Callable[[Principal], bool], error: TopicsError) -> int:
        ended = [subscription for subscription in self._revocable if matches(subscription.principal)]
        for subscription in ended:
            del self._revocable[subscription]
            subscription.end(error)
        return len(ended)

    def stats_for(self, transport: str) -> TransportStats:
        """The counters of ``transport`` (created on first use)."""
        stats = self._transport_stats.get(transport)
        if stats is None:
            stats = self._transport_stats[transport] = TransportStats()
        return stats

    @property
    def transport_stats(self) -> dict[str, TransportStats]:
        """Counters of every transport, by name."""
        return dict(self._transport_stats)

    async def engine_status(self) -> EngineStatus:
        """Whether the engine can serve now, its counters and the retention budget (``/health``, ``/metrics``)."""
        return await self._engine.status()

    def subscription_total(self) -> int:
        """Open subscriptions over all caches."""
        return sum(cache.subscriptions for cache in self._caches.states())

    def topic_count(self) -> int:
        """How many topic instances are live."""
        return len(self._topics)

    def subscription_count(self, cache_name: str) -> int:
        """How many subscriptions the cache has open."""
        cache = self._caches.get(cache_name)
        return 0 if cache is None else cache.subscriptions

    # --- internals -------------------------------------------------------------------------------

    def _new_cache_state(self, name: str) -> CacheState:
        rate = self.limits.publish_rate_per_cache
        bucket = None if rate is None else TokenBucket(rate, max(rate, 1.0), self.clock())
        return CacheState(name, bucket)

    async def _authorized_cache(
        self, cache_name: str, topic_name: str, principal: Principal, action: TopicPermission
    ) -> CacheState:
        """The cache of a topic not live yet: names valid, then permission, then existence."""
        if not self._started:
            raise RuntimeError("TopicsService.start() was not awaited")
        if self._closing:
            raise Unavailable("server is shutting down")
        validate_name("cache_name", cache_name)
        validate_name("topic_name", topic_name)
        # Permission before existence: a restricted caller learns nothing about caches it may not use.
        if not principal.may(action, cache_name, topic_name):
            raise denied(action, cache_name, topic_name)
        cache = self._caches.get(cache_name) or await self._caches.find(cache_name)
        if cache is None:
            raise CacheNotFound(cache_name)
        return cache

    async def _open_topic(self, cache: CacheState, topic_name: str) -> TopicInstance:
        return await self._live.open(
            cache, topic_name, self.limits.max_topics_per_cache, lambda: self._caches.get(cache.name) is cache
        )

    def _released(self, subscription: Cursor) -> None:
        """``subscription`` closed (its topic instance let it go)."""
        self._revocable.pop(subscription, None)
        if self._draining:
            self._subscription_released.set()
