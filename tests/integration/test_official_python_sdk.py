"""User-visible flows through the official ``momento`` Python SDK, unchanged, against tidings.

How streams end (cache deleted, shutdown) is tested with raw stubs in test_wire_protocol.py: momento 1.29.1's
subscription iterators swallow stream errors and read again ("TODO: attempt reconnect" in its subscribe.py).
"""

from __future__ import annotations

import asyncio
import threading

from momento import CacheClient, CacheClientAsync, TopicClient, TopicClientAsync
from momento.errors import MomentoErrorCode
from momento.responses import (
    CreateCache,
    DeleteCache,
    ListCaches,
    TopicPublish,
    TopicSubscribe,
    TopicSubscriptionItem,
)

from tests.integration._server import ServerProcess


async def test_async_client_publishes_and_subscribes_text_and_bytes(
    topic_client_async: TopicClientAsync, cache: str
) -> None:
    subscription = await topic_client_async.subscribe(cache, "orders")
    assert isinstance(subscription, TopicSubscribe.SubscriptionAsync), subscription

    text = await topic_client_async.publish(cache, "orders", "hello")
    binary = await topic_client_async.publish(cache, "orders", b"\x01\x02")
    received = [await asyncio.wait_for(subscription.__anext__(), 10) for _ in range(2)]
    subscription.unsubscribe()

    assert isinstance(text, TopicPublish.Success)
    assert isinstance(binary, TopicPublish.Success)
    first, second = received
    assert isinstance(first, TopicSubscriptionItem.Text)
    assert (first.value, first.sequence_number) == ("hello", 1)
    assert isinstance(second, TopicSubscriptionItem.Binary)
    assert (second.value, second.sequence_number) == (b"\x01\x02", 2)
    assert first.sequence_page == second.sequence_page > 0


def test_sync_client_publishes_and_subscribes(topic_client: TopicClient, cache: str) -> None:
    subscription = topic_client.subscribe(cache, "news")
    assert isinstance(subscription, TopicSubscribe.Subscription), subscription
    received: list[object] = []

    def consume() -> None:
        for item in subscription:
            received.append(item)
            if len(received) == 3:
                return

    consumer = threading.Thread(target=consume)
    consumer.start()
    for i in range(3):
        assert isinstance(topic_client.publish(cache, "news", f"n{i}"), TopicPublish.Success)
    consumer.join(timeout=20)
    subscription.unsubscribe()

    assert not consumer.is_alive()
    assert [(i.value, i.sequence_number) for i in received] == [("n0", 1), ("n1", 2), ("n2", 3)]  # type: ignore[attr-defined]


async def test_async_client_resumes_with_sequence_number_and_page(
    topic_client_async: TopicClientAsync, cache: str
) -> None:
    first = await topic_client_async.subscribe(cache, "t")
    assert isinstance(first, TopicSubscribe.SubscriptionAsync)
    for i in range(1, 6):
        await topic_client_async.publish(cache, "t", f"m{i}")
    seen = [await asyncio.wait_for(first.__anext__(), 10) for _ in range(2)]
    first.unsubscribe()
    last = seen[-1]
    assert isinstance(last, TopicSubscriptionItem.Text)

    resumed = await topic_client_async.subscribe(
        cache,
        "t",
        resume_at_topic_sequence_number=last.sequence_number + 1,
        resume_at_topic_sequence_page=last.sequence_page,
    )
    assert isinstance(resumed, TopicSubscribe.SubscriptionAsync)
    rest = [await asyncio.wait_for(resumed.__anext__(), 10) for _ in range(3)]
    resumed.unsubscribe()

    assert [(i.value, i.sequence_number) for i in rest] == [("m3", 3), ("m4", 4), ("m5", 5)]  # type: ignore[attr-defined]


async def test_publish_to_missing_cache_is_cache_not_found(topic_client_async: TopicClientAsync) -> None:
    response = await topic_client_async.publish("missing-cache", "t", "v")

    assert isinstance(response, TopicPublish.Error)
    assert response.error_code == MomentoErrorCode.NOT_FOUND_ERROR


async def test_subscribe_to_missing_cache_is_cache_not_found(topic_client_async: TopicClientAsync) -> None:
    response = await topic_client_async.subscribe("missing-cache", "t")

    assert isinstance(response, TopicSubscribe.Error)
    assert response.error_code == MomentoErrorCode.NOT_FOUND_ERROR


async def test_oversized_publish_is_limit_exceeded_with_request_size_message(
    topic_client_async: TopicClientAsync, cache: str
) -> None:
    response = await topic_client_async.publish(cache, "t", "x" * 5000)

    assert isinstance(response, TopicPublish.Error)
    assert response.error_code == MomentoErrorCode.LIMIT_EXCEEDED_ERROR
    assert "Request size limit exceeded" in response.message


def test_cache_client_creates_lists_and_deletes_caches(cache_client: CacheClient, server: ServerProcess) -> None:
    name = f"sdk-cache-{id(cache_client)}"

    created = cache_client.create_cache(name)
    again = cache_client.create_cache(name)
    listed = cache_client.list_caches()
    deleted = cache_client.delete_cache(name)
    deleted_again = cache_client.delete_cache(name)
    after = cache_client.list_caches()

    assert isinstance(created, CreateCache.Success)
    assert isinstance(again, CreateCache.CacheAlreadyExists)
    assert isinstance(listed, ListCaches.Success)
    assert name in [c.name for c in listed.caches]
    assert isinstance(deleted, DeleteCache.Success)
    assert isinstance(deleted_again, DeleteCache.Error)
    assert deleted_again.error_code == MomentoErrorCode.NOT_FOUND_ERROR
    assert isinstance(after, ListCaches.Success)
    assert name not in [c.name for c in after.caches]


async def test_async_cache_client_rejects_invalid_name(cache_client_async: CacheClientAsync) -> None:
    response = await cache_client_async.create_cache("bad\tname")

    assert isinstance(response, CreateCache.Error)
    assert response.error_code == MomentoErrorCode.INVALID_ARGUMENT_ERROR
