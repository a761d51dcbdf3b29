"""Subscriptions survive server restarts; calls time out instead of hanging."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

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

from .conftest import TIMEOUT

WITHIN = 20.0
StartServer = Callable[..., ServerProcess]


async def next_item(subscription: TopicSubscribe.SubscriptionAsync) -> SubscriptionItem:
    return await asyncio.wait_for(subscription.__anext__(), WITHIN)


async def publish_all(endpoint: str, cache: str, topic: str, values: list[str]) -> None:
    """Publish each value, retrying while the (restarted) server is not reachable yet: grpcio shares one
    connection per target, which may still wait out its reconnect backoff and fail fast with UNAVAILABLE."""
    async with TopicClientAsync(endpoint, timeout=TIMEOUT) as publisher, asyncio.timeout(WITHIN):
        for value in values:
            while isinstance(response := await publisher.publish(cache, topic, value), TopicPublish.Error):
                assert response.error_code is ErrorCode.UNAVAILABLE, response
                await asyncio.sleep(0.05)


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """A TCP port that accepts connections (the kernel does) but never answers a byte."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"127.0.0.1:{listener.getsockname()[1]}"


async def test_resilience_subscription_resumes_across_a_server_restart(start_server: StartServer) -> None:
    server = start_server("--heartbeat-interval", "1", "--create-cache", "c")
    async with TopicClientAsync(server.endpoint, timeout=TIMEOUT) as client:
        subscription = await client.subscribe("c", "t", include_discontinuities=True)
        assert isinstance(subscription, TopicSubscribe.SubscriptionAsync)
        await publish_all(server.endpoint, "c", "t", ["one", "two", "three"])
        before = [await next_item(subscription) for _ in range(3)]

        await asyncio.to_thread(server.restart)  # same port, same data dir: the topic starts a new page
        await publish_all(server.endpoint, "c", "t", ["four", "five"])
        after = [await next_item(subscription) for _ in range(3)]
        subscription.unsubscribe()

    old_page = before[0].sequence_page  # type: ignore[union-attr]
    discontinuity, four, five = after
    assert [(item.value, item.sequence_number) for item in before] == [("one", 1), ("two", 2), ("three", 3)]  # type: ignore[union-attr]
    assert isinstance(discontinuity, TopicSubscriptionItem.Discontinuity)
    assert discontinuity.last_sequence_number == 3
    assert discontinuity.new_sequence_page > old_page
    assert [(item.value, item.sequence_number) for item in (four, five)] == [("four", 1), ("five", 2)]  # type: ignore[union-attr]
    assert four.sequence_page == five.sequence_page == discontinuity.new_sequence_page  # type: ignore[union-attr]
    assert subscription.statistics().resubscriptions >= 1


def test_resilience_callbacks_continue_across_a_server_restart(start_server: StartServer) -> None:
    server = start_server("--heartbeat-interval", "1", "--create-cache", "c")
    received: list[SubscriptionItem] = []
    got = {count: threading.Event() for count in (2, 4)}

    def on_item(item: SubscriptionItem) -> None:
        received.append(item)
        if len(received) in got:
            got[len(received)].set()

    with TopicClient(server.endpoint, timeout=TIMEOUT) as client:
        subscription = client.subscribe("c", "t", on_item=on_item)
        assert isinstance(subscription, TopicSubscribe.Subscription)
        assert all(isinstance(client.publish("c", "t", value), TopicPublish.Success) for value in ("a", "b"))
        assert got[2].wait(WITHIN)
        server.restart()
        asyncio.run(publish_all(server.endpoint, "c", "t", ["c", "d"]))
        assert got[4].wait(WITHIN)

    assert [item.value for item in received] == ["a", "b", "c", "d"]  # type: ignore[union-attr]
    assert subscription.is_closed


async def test_resilience_subscription_retries_until_unsubscribed(start_server: StartServer) -> None:
    server = start_server("--create-cache", "c")
    async with TopicClientAsync(server.endpoint, timeout=TIMEOUT) as client:
        subscription = await client.subscribe("c", "t")
        assert isinstance(subscription, TopicSubscribe.SubscriptionAsync)
        await asyncio.to_thread(server.stop)

        async def consume() -> list[SubscriptionItem]:
            return [item async for item in subscription]

        consumer = asyncio.create_task(consume())
        async with asyncio.timeout(WITHIN):
            # The server is gone and it keeps trying; a counter is all there is to watch.
            while subscription.statistics().resubscriptions < 2:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        subscription.unsubscribe()
        started = time.monotonic()
        received = await asyncio.wait_for(consumer, WITHIN)

    assert time.monotonic() - started < 1.0
    assert len(received) == 1
    assert isinstance(received[0], TopicSubscriptionItem.Error)
    assert received[0].error_code is ErrorCode.CANCELLED


async def test_resilience_publish_times_out_against_a_server_that_never_answers(silent_endpoint: str) -> None:
    async with TopicClientAsync(silent_endpoint, timeout=0.5) as client:
        started = time.monotonic()
        publish = await client.publish("c", "t", "hello?")
        subscribe = await client.subscribe("c", "t")
        elapsed = time.monotonic() - started

    assert isinstance(publish, TopicPublish.Error)
    assert publish.error_code is ErrorCode.TIMEOUT
    assert isinstance(subscribe, TopicSubscribe.Error)
    assert subscribe.error_code is ErrorCode.TIMEOUT
    assert elapsed < 5.0


def test_resilience_sync_publish_times_out_too(silent_endpoint: str) -> None:
    with TopicClient(silent_endpoint, timeout=0.5) as client:
        response = client.publish("c", "t", "hello?")

    assert isinstance(response, TopicPublish.Error)
    assert response.error_code is ErrorCode.TIMEOUT


async def test_resilience_nothing_listening_is_unavailable() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        endpoint = f"127.0.0.1:{unused.getsockname()[1]}"  # bound, not listening: connections are refused
        # A subscribe is asked again until the timeout (a server may be restarting): a short one, nothing answers.
        async with TopicClientAsync(endpoint, timeout=2.0) as client:
            publish = await client.publish("c", "t", "v")
            subscribe = await client.subscribe("c", "t")

    assert isinstance(publish, TopicPublish.Error)
    assert publish.error_code is ErrorCode.UNAVAILABLE
    assert isinstance(subscribe, TopicSubscribe.Error)
    assert subscribe.error_code is ErrorCode.UNAVAILABLE
