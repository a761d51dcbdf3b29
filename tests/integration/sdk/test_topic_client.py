"""`TopicClientAsync` and `TopicClient` against a real server: publish, subscribe (iterators and callbacks)."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from typing import Any

import grpc
from momento_wire_types import controlclient_pb2, controlclient_pb2_grpc

from tests.integration._server import ServerProcess
from tidings import (
    ErrorCode,
    SubscriptionItem,
    TopicClient,
    TopicClientAsync,
    TopicPublish,
    TopicSubscribe,
    TopicSubscriptionItem,
)

WITHIN = 10.0


async def next_item(subscription: TopicSubscribe.SubscriptionAsync) -> SubscriptionItem:
    return await asyncio.wait_for(subscription.__anext__(), WITHIN)


async def subscribe(
    client: TopicClientAsync, cache: str, topic: str, **options: Any
) -> TopicSubscribe.SubscriptionAsync:
    subscription = await client.subscribe(cache, topic, **options)
    assert isinstance(subscription, TopicSubscribe.SubscriptionAsync), subscription
    return subscription


def describe(item: SubscriptionItem) -> str:
    """What a subscriber would do with each kind of item: written with ``match``, as users write it."""
    match item:
        case TopicSubscriptionItem.Text(value=value, sequence_number=number):
            return f"text {number} {value}"
        case TopicSubscriptionItem.Binary(value, number):
            return f"binary {number} {value.hex()}"
        case TopicSubscriptionItem.Heartbeat():
            return "heartbeat"
        case TopicSubscriptionItem.Discontinuity(last, new, _page):
            return f"discontinuity {last}->{new}"
        case TopicSubscriptionItem.Error(error_code=code):
            return f"error {code.name}"


async def test_topic_client_async_publishes_and_receives_text_and_binary(client: TopicClientAsync, cache: str) -> None:
    subscription = await subscribe(client, cache, "orders")

    published = [await client.publish(cache, "orders", "hello"), await client.publish(cache, "orders", b"\x00\xff")]
    first, second = await next_item(subscription), await next_item(subscription)
    subscription.unsubscribe()

    assert published == [TopicPublish.Success(), TopicPublish.Success()]
    assert isinstance(first, TopicSubscriptionItem.Text)
    assert isinstance(second, TopicSubscriptionItem.Binary)
    assert (first.value, first.sequence_number, first.token_id) == ("hello", 1, None)
    assert (second.value, second.sequence_number, second.token_id) == (b"\x00\xff", 2, None)
    assert first.sequence_page == second.sequence_page > 0
    assert [describe(first), describe(second)] == ["text 1 hello", "binary 2 00ff"]


def test_topic_client_sync_publishes_and_iterates(sync_client: TopicClient, cache: str) -> None:
    subscription = sync_client.subscribe(cache, "news")
    assert isinstance(subscription, TopicSubscribe.Subscription), subscription

    for number in range(1, 4):
        assert isinstance(sync_client.publish(cache, "news", f"n{number}"), TopicPublish.Success)
    received = [describe(item) for item in itertools.islice(subscription, 3)]
    subscription.unsubscribe()
    rest = [describe(item) for item in subscription]

    assert received == ["text 1 n1", "text 2 n2", "text 3 n3"]
    assert rest == ["error CANCELLED"]
    assert subscription.resume_at_sequence_number == 4


async def test_topic_client_async_resumes_at_a_sequence_number_and_page(client: TopicClientAsync, cache: str) -> None:
    first = await subscribe(client, cache, "t")
    for number in range(1, 6):
        await client.publish(cache, "t", f"m{number}")
    seen = [await next_item(first) for _ in range(2)]
    first.unsubscribe()

    resumed = await subscribe(
        client,
        cache,
        "t",
        resume_at_sequence_number=first.resume_at_sequence_number,
        resume_at_sequence_page=first.sequence_page,
    )
    rest = [await next_item(resumed) for _ in range(3)]
    resumed.unsubscribe()

    assert [describe(item) for item in seen + rest] == [f"text {n} m{n}" for n in range(1, 6)]


async def test_topic_client_async_reports_heartbeats_when_asked(client: TopicClientAsync, cache: str) -> None:
    subscription = await subscribe(client, cache, "quiet", include_heartbeats=True)

    # The first on every stream, then one per idle interval (1 s on the session server).
    first, second = await next_item(subscription), await next_item(subscription)
    subscription.unsubscribe()

    assert first == second == TopicSubscriptionItem.Heartbeat()


async def test_topic_client_async_reports_discontinuities_when_asked(client: TopicClientAsync, cache: str) -> None:
    await client.publish(cache, "d", "one")
    await client.publish(cache, "d", "two")

    # Page 1 is long gone: the server says where items resume, then replays the current page.
    subscription = await subscribe(
        client, cache, "d", resume_at_sequence_number=7, resume_at_sequence_page=1, include_discontinuities=True
    )
    received = [await next_item(subscription) for _ in range(3)]
    subscription.unsubscribe()

    discontinuity, first, second = received
    assert isinstance(discontinuity, TopicSubscriptionItem.Discontinuity)
    assert (discontinuity.last_sequence_number, discontinuity.new_sequence_number) == (6, 0)
    assert [describe(first), describe(second)] == ["text 1 one", "text 2 two"]
    assert discontinuity.new_sequence_page == first.sequence_page  # type: ignore[union-attr]


async def test_topic_client_async_delivers_to_callbacks(client: TopicClientAsync, cache: str) -> None:
    received: list[str] = []
    two_items, ended = asyncio.Event(), asyncio.Event()

    def on_item(item: SubscriptionItem) -> None:
        received.append(describe(item))
        if len(received) == 2:
            two_items.set()

    async def on_error(item: TopicSubscriptionItem.Error) -> None:
        received.append(describe(item))
        ended.set()

    subscription = await client.subscribe(cache, "cb", on_item=on_item, on_error=on_error)
    assert isinstance(subscription, TopicSubscribe.SubscriptionAsync)
    await client.publish(cache, "cb", "a")
    await client.publish(cache, "cb", b"b")
    await asyncio.wait_for(two_items.wait(), WITHIN)
    subscription.unsubscribe()
    await asyncio.wait_for(ended.wait(), WITHIN)

    assert received == ["text 1 a", "binary 2 62", "error CANCELLED"]


def test_topic_client_sync_delivers_to_callbacks_on_a_background_thread(sync_client: TopicClient, cache: str) -> None:
    received: list[tuple[str, str]] = []
    two_items, ended = threading.Event(), threading.Event()

    def on_item(item: SubscriptionItem) -> None:
        received.append((describe(item), threading.current_thread().name))
        if len(received) == 2:
            two_items.set()

    def on_error(item: SubscriptionItem) -> None:
        received.append((describe(item), threading.current_thread().name))
        ended.set()

    subscription = sync_client.subscribe(cache, "cb", on_item=on_item, on_error=on_error)
    assert isinstance(subscription, TopicSubscribe.Subscription)
    sync_client.publish(cache, "cb", "a")
    sync_client.publish(cache, "cb", "b")
    assert two_items.wait(WITHIN)
    subscription.unsubscribe()
    assert ended.wait(WITHIN)
    subscription.join(WITHIN)

    assert [description for description, _ in received] == ["text 1 a", "text 2 b", "error CANCELLED"]
    assert {thread for _, thread in received} == {f"tidings-subscription:{cache}/cb"}


def test_topic_client_sync_unsubscribe_from_another_thread_ends_a_blocked_iteration(
    sync_client: TopicClient, cache: str
) -> None:
    subscription = sync_client.subscribe(cache, "idle")
    assert isinstance(subscription, TopicSubscribe.Subscription)
    sync_client.publish(cache, "idle", "only")
    first = next(subscription)

    def unsubscribe_once_blocked() -> None:
        deadline = time.monotonic() + WITHIN
        while subscription._in_flight is None and time.monotonic() < deadline:  # the main thread waits in next()
            time.sleep(0.005)
        subscription.unsubscribe()

    other = threading.Thread(target=unsubscribe_once_blocked)
    other.start()
    rest = list(subscription)  # nothing else arrives on this topic: only unsubscribe() can end this
    other.join()

    assert describe(first) == "text 1 only"
    assert [describe(item) for item in rest] == ["error CANCELLED"]
    assert subscription.is_closed


async def test_topic_client_async_unsubscribe_from_another_task(client: TopicClientAsync, cache: str) -> None:
    subscription = await subscribe(client, cache, "idle")

    async def consume() -> list[str]:
        return [describe(item) async for item in subscription]

    consumer = asyncio.create_task(consume())
    await asyncio.sleep(0)
    subscription.unsubscribe()

    assert await asyncio.wait_for(consumer, WITHIN) == ["error CANCELLED"]


def test_topic_client_sync_is_safe_from_many_threads(sync_client: TopicClient, cache: str) -> None:
    subscription = sync_client.subscribe(cache, "busy")
    assert isinstance(subscription, TopicSubscribe.Subscription)

    def publish(worker: int) -> None:
        for number in range(25):
            assert isinstance(sync_client.publish(cache, "busy", f"{worker}:{number}"), TopicPublish.Success)

    workers = [threading.Thread(target=publish, args=(worker,)) for worker in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    received = list(itertools.islice(subscription, 100))
    subscription.unsubscribe()

    assert [item.sequence_number for item in received] == list(range(1, 101))  # type: ignore[union-attr]
    assert len({item.value for item in received}) == 100  # type: ignore[union-attr]


async def test_topic_client_async_errors_are_values(client: TopicClientAsync, cache: str) -> None:
    missing_publish = await client.publish("no-such-cache", "t", "v")
    missing_subscribe = await client.subscribe("no-such-cache", "t")
    oversized = await client.publish(cache, "t", "x" * 5000)

    assert isinstance(missing_publish, TopicPublish.Error)
    assert missing_publish.error_code is ErrorCode.CACHE_NOT_FOUND
    assert isinstance(missing_subscribe, TopicSubscribe.Error)
    assert missing_subscribe.error_code is ErrorCode.CACHE_NOT_FOUND
    assert isinstance(oversized, TopicPublish.Error)
    assert oversized.error_code is ErrorCode.LIMIT_EXCEEDED
    assert oversized.limit == "request_size_limit_exceeded"


async def test_value_over_the_receive_limit_is_a_request_size_limit(client: TopicClientAsync, cache: str) -> None:
    # grpcio refuses it before the server's handler runs, without the `err` metadata: the SDK still names the limit.
    response = await client.publish(cache, "t", b"x" * (1024 * 1024))

    assert isinstance(response, TopicPublish.Error)
    assert response.error_code is ErrorCode.LIMIT_EXCEEDED
    assert response.limit == "request_size_limit_exceeded"


async def test_topic_client_async_subscription_ends_when_its_cache_is_deleted(
    client: TopicClientAsync, server: ServerProcess, cache: str
) -> None:
    subscription = await subscribe(client, cache, "doomed")

    with grpc.insecure_channel(server.endpoint) as channel:
        controlclient_pb2_grpc.ScsControlStub(channel).DeleteCache(
            controlclient_pb2._DeleteCacheRequest(cache_name=cache), timeout=WITHIN
        )
    final = await next_item(subscription)

    assert isinstance(final, TopicSubscriptionItem.Error)
    assert final.error_code is ErrorCode.CACHE_NOT_FOUND
    assert subscription.statistics().resubscriptions == 0


async def test_topic_client_async_callbacks_receive_a_final_failure(server: ServerProcess, cache: str) -> None:
    errors: list[SubscriptionItem] = []
    ended = asyncio.Event()

    def on_error(item: SubscriptionItem) -> None:
        errors.append(item)
        ended.set()

    async with TopicClientAsync(server.endpoint) as client:
        subscription = await client.subscribe(cache, "doomed", on_item=print, on_error=on_error)
        assert isinstance(subscription, TopicSubscribe.SubscriptionAsync)
        with grpc.insecure_channel(server.endpoint) as channel:
            controlclient_pb2_grpc.ScsControlStub(channel).DeleteCache(
                controlclient_pb2._DeleteCacheRequest(cache_name=cache), timeout=WITHIN
            )
        await asyncio.wait_for(ended.wait(), WITHIN)

    assert [describe(item) for item in errors] == ["error CACHE_NOT_FOUND"]
    assert not [task for task in asyncio.all_tasks() if task.get_name().startswith("tidings")]
