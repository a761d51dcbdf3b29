"""Caches are one directory across servers sharing a store: two topics services on one Redis, and on one Redis
Cluster, each with its own engine and store connection (as two nodes have), list, find, create and delete the
same caches.

How fast a server's own view follows the store is tested on a sleep the test steps (`ManualSleep`): one check
after a change is enough, and the checks are half the refresh interval apart. The tests in real time use a short
interval and a loose bound, so a busy machine does not fail them.

The end-to-end counterpart, over real server processes and `--workers 2`, is
tests/integration/test_redis_caches.py.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
import redis
from redis.cluster import RedisCluster as ClusterClient

from tests._redis import RedisCluster, RedisServer
from tidings.server.core import (
    CacheAlreadyExists,
    CacheNotFound,
    Engine,
    Limit,
    LimitExceeded,
    Limits,
    TopicsService,
)
from tidings.server.engine.memory import MemoryEngine
from tidings.server.engine.redis import RedisEngine
from tidings.server.redis_io._shards import Shards
from tidings.server.store.redis import RedisStore

# What docs/deploy.md promises: a server's own view of the caches follows the store within half a second.
REFRESH_PROMISE = 0.5
# The tests in real time: a short refresh interval, and a bound that only a broken refresh misses.
SHORT_INTERVAL = 0.05
LOOSE_BOUND = 10.0
_prefixes = itertools.count(1)


class ManualSleep:
    """A sleep that returns only when the test `step`s it, recording how long it was asked to wait."""

    def __init__(self) -> None:
        self.durations: list[float] = []
        self._asleep = asyncio.Event()
        self._wake = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        self.durations.append(seconds)
        self._asleep.set()
        await self._wake.wait()
        self._wake.clear()

    async def step(self) -> None:
        """Wake the sleeper, and return once it sleeps again: it did one round of its work."""
        await self._asleep.wait()
        self._asleep.clear()
        self._wake.set()
        await self._asleep.wait()


class HeldLookups(RedisStore):
    """A Redis store whose cache lookups answer only once the test sets ``release`` (``answered`` is set when
    Redis has answered), and which awaits ``when_listed``, if set, after its next read of the cache list."""

    def __init__(self, shards: Shards, *, prefix: str = "tidings:") -> None:
        super().__init__(shards, prefix=prefix)
        self.answered = asyncio.Event()
        self.release = asyncio.Event()
        self.when_listed: Callable[[], Awaitable[object]] | None = None

    async def cache_exists(self, cache_name: str) -> bool:
        exists = await super().cache_exists(cache_name)
        self.answered.set()
        await self.release.wait()
        return exists

    async def list_caches(self) -> list[str]:
        names = await super().list_caches()
        listed, self.when_listed = self.when_listed, None
        if listed is not None:
            await listed()
        return names


@dataclass
class Deployment:
    """Servers (topics services) sharing one Redis under one key prefix; ``open`` adds one."""

    url: str
    cluster: bool
    prefix: str = field(default_factory=lambda: f"shared-caches{next(_prefixes)}:")
    stores: list[RedisStore] = field(default_factory=list)
    _closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def open(
        self,
        limits: Limits | None = None,
        *,
        hears_deletions: bool = True,
        store_class: type[RedisStore] = RedisStore,
        refresh_interval: float = SHORT_INTERVAL,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> TopicsService:
        """A started service; without ``hears_deletions`` its engine never hears another server announce a
        deletion (as when the announcement is lost), so only the store tells it."""
        limits = limits or Limits()
        store = await store_class.open(self.url, cluster=self.cluster, prefix=self.prefix)
        self.stores.append(store)
        self._closers.append(store.close)
        engine: Engine
        if hears_deletions:
            shards = Shards(self.url, cluster=self.cluster)
            redis_engine = RedisEngine(
                shards, limits.retention_messages, limits.retention_bytes, limits.topic_idle_ttl, prefix=self.prefix
            )
            await shards.start()
            self._closers.append(shards.close)
            await redis_engine.start()
            self._closers.append(redis_engine.close)
            engine = redis_engine
        else:
            engine = MemoryEngine(limits.retention_messages, limits.retention_bytes)
        service = TopicsService(engine, store, limits, cache_refresh_interval=refresh_interval, sleep=sleep)
        await service.start()
        self._closers.append(service.close)
        return service

    def lose_store(self) -> None:
        """Delete what the store keeps in Redis (caches, keys, ...), as a Redis restarted without persistence."""
        pattern = f"{self.prefix}{{store}}:*"
        if self.cluster:
            with ClusterClient.from_url(self.url, protocol=2) as cluster:
                keys = cluster.keys(pattern, target_nodes=ClusterClient.ALL_NODES)
                cluster.delete(*keys)
        else:
            with redis.Redis.from_url(self.url, protocol=2) as client:
                client.delete(*client.keys(pattern))

    async def close(self) -> None:
        for close in reversed(self._closers):
            await close()


@pytest.fixture(params=["redis", "redis-cluster"])
async def deployment(request: pytest.FixtureRequest) -> AsyncIterator[Deployment]:
    redis: RedisServer | RedisCluster = request.getfixturevalue(
        "redis_server" if request.param == "redis" else "redis_cluster"
    )
    built = Deployment(redis.url, cluster=request.param == "redis-cluster")
    yield built
    await built.close()


async def _within(seconds: float, condition: Callable[[], bool]) -> None:
    """Return once ``condition`` is true, checked every 10 ms; fails after ``seconds``.

    A poll, because what the server does in time (its refresh) has no event the test can await.
    """
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < seconds, f"not within {seconds} s"
        await asyncio.sleep(0.01)


async def test_shared_caches_created_on_one_server_are_listed_found_and_refused_again_on_the_other(
    deployment: Deployment,
) -> None:
    # Arrange
    a, b = await deployment.open(), await deployment.open()

    # Act
    await a.create_cache("orders")
    listed_on_b = await b.list_caches()
    found_on_b = await b.find_cache("orders")
    subscriptions_on_b = await b.inspect_cache("orders")
    with pytest.raises(CacheAlreadyExists):
        await b.create_cache("orders")

    # Assert
    assert listed_on_b == ["orders"]
    assert found_on_b
    assert subscriptions_on_b == 0
    assert await a.list_caches() == ["orders"]


async def test_shared_caches_deleted_on_a_server_that_never_used_them_end_the_subscriptions_elsewhere(
    deployment: Deployment,
) -> None:
    # Arrange: the cache is created on A and has a subscriber there; B never used it.
    a, b = await deployment.open(), await deployment.open()
    await a.create_cache("orders")
    subscription = await a.subscribe("orders", "t")
    waiting = asyncio.create_task(subscription.next_events())

    # Act
    await b.delete_cache("orders")

    # Assert
    with pytest.raises(CacheNotFound):
        await asyncio.wait_for(waiting, 10)
    assert await a.list_caches() == await b.list_caches() == []
    with pytest.raises(CacheNotFound):
        await a.inspect_cache("orders")
    with pytest.raises(CacheNotFound):
        await a.delete_cache("orders")
    subscription.close()


async def test_shared_caches_a_lost_deletion_announcement_is_made_up_for_by_the_refresh(
    deployment: Deployment,
) -> None:
    # Arrange: B never hears A's announcement; it has a subscriber to the cache.
    a, b = await deployment.open(), await deployment.open(hears_deletions=False)
    await a.create_cache("orders")
    subscription = await b.subscribe("orders", "t")
    ended = asyncio.create_task(subscription.next_events())

    # Act
    await a.delete_cache("orders")
    await _within(LOOSE_BOUND, lambda: not b.has_cache("orders"))

    # Assert: the subscription ended as a deletion ends it.
    with pytest.raises(CacheNotFound):
        await asyncio.wait_for(ended, 10)
    with pytest.raises(CacheNotFound):
        await b.publish("orders", "t", "after the deletion")
    subscription.close()


async def test_shared_caches_created_elsewhere_are_counted_after_the_refresh(deployment: Deployment) -> None:
    # Arrange
    a, b = await deployment.open(), await deployment.open()

    # Act
    await a.create_cache("orders")
    await _within(LOOSE_BOUND, lambda: b.cache_count() == 1)

    # Assert
    assert b.has_cache("orders")


async def test_shared_caches_each_change_is_followed_at_the_next_check_half_a_refresh_interval_away(
    deployment: Deployment,
) -> None:
    # Arrange: B's watch of the store sleeps until the test steps it; B never hears announcements of deletions.
    sleeper = ManualSleep()
    a = await deployment.open()
    b = await deployment.open(hears_deletions=False, refresh_interval=REFRESH_PROMISE, sleep=sleeper)

    # Act: one check after A creates the cache, and one after A deletes it
    await a.create_cache("orders")
    await sleeper.step()
    known_after_the_creation = b.has_cache("orders")
    subscription = await b.subscribe("orders", "t")
    ended = asyncio.create_task(subscription.next_events())
    await a.delete_cache("orders")
    await sleeper.step()

    # Assert: the first check after each change followed it, and the checks are half the interval apart, so a
    # change is followed within the interval (at most half of it waiting, the rest for the check and the refresh).
    assert known_after_the_creation
    assert not b.has_cache("orders")
    with pytest.raises(CacheNotFound):
        await asyncio.wait_for(ended, 10)
    assert sleeper.durations == [REFRESH_PROMISE / 2] * 3
    subscription.close()


@pytest.mark.parametrize("answered", ["while-the-store-is-read", "after-the-refresh"])
async def test_shared_caches_a_lookup_overtaken_by_a_deletion_is_settled_at_the_next_check(
    deployment: Deployment, answered: str
) -> None:
    # Arrange: B has not heard of the cache when a publish there looks it up, and the answer (it exists) is held.
    sleeper = ManualSleep()
    a = await deployment.open()
    b = await deployment.open(hears_deletions=False, store_class=HeldLookups, sleep=sleeper)
    [store] = [store for store in deployment.stores if isinstance(store, HeldLookups)]
    await a.create_cache("orders")
    publishing = asyncio.create_task(b.publish("orders", "t", "overtaken"))
    await store.answered.wait()

    # Act: A deletes it; B's next check reads the store, and the held answer arrives during that read or after it
    await a.delete_cache("orders")

    async def answer_the_lookup() -> None:
        store.release.set()
        await publishing

    if answered == "while-the-store-is-read":
        store.when_listed = answer_the_lookup
        await sleeper.step()
    else:
        await sleeper.step()
        await answer_the_lookup()
    learnt_from_the_lookup = b.has_cache("orders")
    await sleeper.step()

    # Assert: the late answer made B learn the deleted cache, and the next check forgot it.
    assert learnt_from_the_lookup
    assert not b.has_cache("orders")
    with pytest.raises(CacheNotFound):
        await b.publish("orders", "t", "after the deletion")


async def test_shared_caches_lost_by_redis_end_the_subscriptions_on_every_server(deployment: Deployment) -> None:
    # Arrange: a subscriber to the cache on each server.
    a, b = await deployment.open(), await deployment.open()
    await a.create_cache("orders")
    await _within(LOOSE_BOUND, lambda: b.has_cache("orders"))
    subscriptions = [await server.subscribe("orders", "t") for server in (a, b)]
    ended = [asyncio.create_task(subscription.next_events()) for subscription in subscriptions]

    # Act: Redis loses the store's data
    deployment.lose_store()

    # Assert: every subscription ends as a deletion ends it, and the cache is gone everywhere.
    for ending in ended:
        with pytest.raises(CacheNotFound):
            await asyncio.wait_for(ending, LOOSE_BOUND)
    assert await a.list_caches() == await b.list_caches() == []
    for subscription in subscriptions:
        subscription.close()


async def test_shared_caches_the_cache_limit_counts_the_caches_of_every_server(deployment: Deployment) -> None:
    # Arrange
    limits = Limits(max_caches=2)
    a, b = await deployment.open(limits), await deployment.open(limits)
    await a.create_cache("one")
    await b.create_cache("two")

    # Act
    with pytest.raises(LimitExceeded) as raised:
        await a.create_cache("three")

    # Assert
    assert raised.value.limit is Limit.CACHE_COUNT
    assert await b.list_caches() == ["one", "two"]
