"""Interoperability with the official ``momento`` SDK, both ways, on the same server."""

from __future__ import annotations

import asyncio

from momento import CacheClientAsync as MomentoCacheClient
from momento import TopicClientAsync as MomentoTopicClient
from momento.responses import CreateCache as MomentoCreateCache
from momento.responses import ListCaches as MomentoListCaches
from momento.responses import TopicPublish as MomentoTopicPublish
from momento.responses import TopicSubscribe as MomentoTopicSubscribe
from momento.responses import TopicSubscriptionItem as MomentoItem

from tidings import (
    CacheClientAsync,
    CreateCache,
    ListCaches,
    TopicClientAsync,
    TopicPublish,
    TopicSubscribe,
    TopicSubscriptionItem,
)

WITHIN = 10.0


async def test_interop_momento_publishes_and_tidings_receives(
    client: TopicClientAsync, topic_client_async: MomentoTopicClient, cache: str
) -> None:
    subscription = await client.subscribe(cache, "from-momento")
    assert isinstance(subscription, TopicSubscribe.SubscriptionAsync)

    text = await topic_client_async.publish(cache, "from-momento", "hello from momento")
    binary = await topic_client_async.publish(cache, "from-momento", b"\x01\x02\x03")
    received = [await asyncio.wait_for(subscription.__anext__(), WITHIN) for _ in range(2)]
    subscription.unsubscribe()

    assert isinstance(text, MomentoTopicPublish.Success)
    assert isinstance(binary, MomentoTopicPublish.Success)
    first, second = received
    assert isinstance(first, TopicSubscriptionItem.Text)
    assert isinstance(second, TopicSubscriptionItem.Binary)
    assert (first.value, first.sequence_number) == ("hello from momento", 1)
    assert (second.value, second.sequence_number) == (b"\x01\x02\x03", 2)
    assert first.sequence_page == second.sequence_page > 0


async def test_interop_tidings_publishes_and_momento_receives(
    client: TopicClientAsync, topic_client_async: MomentoTopicClient, cache: str
) -> None:
    subscription = await topic_client_async.subscribe(cache, "from-tidings")
    assert isinstance(subscription, MomentoTopicSubscribe.SubscriptionAsync), subscription

    published = [
        await client.publish(cache, "from-tidings", "hello from tidings"),
        await client.publish(cache, "from-tidings", b"\xff"),
    ]
    received = [await asyncio.wait_for(subscription.__anext__(), WITHIN) for _ in range(2)]
    subscription.unsubscribe()

    assert published == [TopicPublish.Success(), TopicPublish.Success()]
    first, second = received
    assert isinstance(first, MomentoItem.Text)
    assert isinstance(second, MomentoItem.Binary)
    assert (first.value, first.sequence_number) == ("hello from tidings", 1)
    assert (second.value, second.sequence_number) == (b"\xff", 2)
    assert first.sequence_page == second.sequence_page > 0


async def test_interop_caches_are_shared_both_ways(
    caches: CacheClientAsync, cache_client_async: MomentoCacheClient, cache: str
) -> None:
    ours = f"{cache}-ours"
    theirs = f"{cache}-theirs"

    created_by_us = await caches.create_cache(ours)
    created_by_them = await cache_client_async.create_cache(theirs)
    listed_by_us = await caches.list_caches()
    listed_by_them = await cache_client_async.list_caches()

    assert isinstance(created_by_us, CreateCache.Success)
    assert isinstance(created_by_them, MomentoCreateCache.Success)
    assert isinstance(listed_by_us, ListCaches.Success)
    assert {ours, theirs} <= set(listed_by_us.cache_names)
    assert isinstance(listed_by_them, MomentoListCaches.Success)
    assert {ours, theirs} <= {info.name for info in listed_by_them.caches}
