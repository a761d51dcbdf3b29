"""PROTOCOL.md *Subscribe* rule 2 on every transport: a subscribe without a position starts with the newest
retained message (Momento: "the subscription will begin with the latest messages"); ``--subscribe-latest``."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import grpc.aio
import httpx
from momento import TopicClient, TopicClientAsync
from momento.responses import TopicSubscribe, TopicSubscriptionItem
from momento_wire_types import cachepubsub_pb2_grpc

from tests.integration._server import ServerProcess
from tests.integration._wire import open_subscription, publish, read_items
from tests.integration.conftest import create_cache
from tests.integration.test_official_node_sdk import run_node

StartServer = Callable[..., ServerProcess]


async def test_official_async_sdk_receives_the_message_published_before_it_subscribed(
    topic_client_async: TopicClientAsync, cache: str
) -> None:
    # Momento's own SDK test: publish, then subscribe without a position, and expect that message.
    await topic_client_async.publish(cache, "t", "one")
    await topic_client_async.publish(cache, "t", "two")
    subscription = await topic_client_async.subscribe(cache, "t")
    assert isinstance(subscription, TopicSubscribe.SubscriptionAsync), subscription

    first = await asyncio.wait_for(subscription.__anext__(), 10)
    await topic_client_async.publish(cache, "t", "three")
    live = await asyncio.wait_for(subscription.__anext__(), 10)
    subscription.unsubscribe()

    assert isinstance(first, TopicSubscriptionItem.Text)
    assert isinstance(live, TopicSubscriptionItem.Text)
    assert [(first.value, first.sequence_number), (live.value, live.sequence_number)] == [("two", 2), ("three", 3)]


def test_official_sync_sdk_receives_the_message_published_before_it_subscribed(
    topic_client: TopicClient, cache: str
) -> None:
    topic_client.publish(cache, "t", "hello")
    subscription = topic_client.subscribe(cache, "t")
    assert isinstance(subscription, TopicSubscribe.Subscription), subscription
    received: list[object] = []
    consumer = threading.Thread(target=lambda: received.append(next(iter(subscription))))

    consumer.start()
    consumer.join(timeout=20)
    subscription.unsubscribe()

    [item] = received
    assert isinstance(item, TopicSubscriptionItem.Text)
    assert (item.value, item.sequence_number) == ("hello", 1)


def test_official_node_sdk_receives_the_message_published_before_it_subscribed(
    server: ServerProcess, cache: str
) -> None:
    run_node(server, "publish", "--cache", cache, "--topic", "t", "--count", "3")

    lines = run_node(server, "subscribe", "--cache", cache, "--topic", "t", "--count", "1", "--seconds", "20")

    [item] = [line["item"] for line in lines if "item" in line]
    assert (item["sequence_number"], item["value"]) == (3, "msg-3")


async def test_subscribe_latest_zero_is_live_only(start_server: StartServer) -> None:
    server = start_server("--subscribe-latest", "0")
    cache = create_cache(server)
    async with grpc.aio.insecure_channel(server.endpoint) as channel:
        stub = cachepubsub_pb2_grpc.PubsubStub(channel)
        await publish(stub, cache, "t", "before")
        call = await open_subscription(stub, cache, "t")
        await publish(stub, cache, "t", "after")
        [item] = await read_items(call, 1)
        call.cancel()

    assert (item.value.text, item.topic_sequence_number) == ("after", 2)


async def test_subscribe_latest_n_replays_the_newest_n(start_server: StartServer) -> None:
    server = start_server("--subscribe-latest", "3")
    cache = create_cache(server)
    async with grpc.aio.insecure_channel(server.endpoint) as channel:
        stub = cachepubsub_pb2_grpc.PubsubStub(channel)
        for i in range(1, 6):
            await publish(stub, cache, "t", f"m{i}")
        call = await open_subscription(stub, cache, "t")
        items = await read_items(call, 3)
        call.cancel()

    assert [(i.topic_sequence_number, i.value.text) for i in items] == [(3, "m3"), (4, "m4"), (5, "m5")]


async def test_http_long_poll_without_position_answers_with_the_latest_message(server: ServerProcess) -> None:
    cache = create_cache(server)
    async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as http:
        for text in ("a", "b"):
            published = await http.post(f"/topics/{cache}/t", content=text, headers={"content-type": "text/plain"})
            assert published.status_code == 204

        answer = await http.get(f"/topics/{cache}/t")

    [entry] = answer.json()["items"]
    assert (entry["item"]["topic_sequence_number"], entry["item"]["value"]) == (2, {"text": "b"})


async def test_sse_without_position_starts_with_the_latest_message(server: ServerProcess) -> None:
    cache = create_cache(server)
    async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as http:
        await http.post(f"/topics/{cache}/t", content="latest", headers={"content-type": "text/plain"})
        async with http.stream("GET", f"/topics/{cache}/t/events") as stream:
            events: list[str] = []
            async for line in stream.aiter_lines():
                if line.startswith("event: "):
                    events.append(line.removeprefix("event: "))
                if line.startswith("data: ") and events[-1] == "item":
                    data = line
                    break

    assert events == ["heartbeat", "item"]
    assert '"text":"latest"' in data
    assert '"topic_sequence_number":1' in data


async def test_a_topic_with_nothing_retained_starts_live(pubsub: cachepubsub_pb2_grpc.PubsubStub, cache: str) -> None:
    call = await open_subscription(pubsub, cache, "empty")
    await publish(pubsub, cache, "empty", "first")

    [item] = await read_items(call, 1)
    call.cancel()

    assert (item.value.text, item.topic_sequence_number) == ("first", 1)
