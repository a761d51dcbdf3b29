"""Clients are context managers with a clear end: closing ends subscriptions and leaks no thread, task or channel."""

from __future__ import annotations

import asyncio
import gc
import threading

import grpc.aio
import pytest

from tests.integration._server import ServerProcess
from tidings import (
    CacheClient,
    CacheClientAsync,
    ErrorCode,
    SubscriptionItem,
    TopicClient,
    TopicClientAsync,
    TopicSubscribe,
    TopicSubscriptionItem,
)

WITHIN = 10.0


def open_channels() -> int:
    gc.collect()
    return sum(isinstance(thing, grpc.aio.Channel) for thing in gc.get_objects())


def is_cancelled(item: SubscriptionItem) -> bool:
    return isinstance(item, TopicSubscriptionItem.Error) and item.error_code is ErrorCode.CANCELLED


def test_lifecycle_sync_clients_leave_no_threads(server: ServerProcess, cache: str) -> None:
    with TopicClient(server.endpoint) as warm_up:
        warm_up.publish(cache, "warm-up", "x")  # grpc.aio starts one process-wide poller thread, once
    before = set(threading.enumerate())
    endings: list[SubscriptionItem] = []
    delivered = threading.Event()

    with TopicClient(server.endpoint) as client, CacheClient(server.endpoint) as caches:
        caches.list_caches()
        with_callbacks = client.subscribe(cache, "t", on_item=lambda item: delivered.set(), on_error=endings.append)
        iterated = client.subscribe(cache, "t")
        assert isinstance(with_callbacks, TopicSubscribe.Subscription)
        assert isinstance(iterated, TopicSubscribe.Subscription)
        client.publish(cache, "t", "x")
        assert delivered.wait(WITHIN)
        assert isinstance(next(iterated), TopicSubscriptionItem.Text)
        started = set(threading.enumerate()) - before

    # grpc.aio runs one process-wide poller thread while any aio channel is open: not ours to count.
    assert {thread.name for thread in started if "_poll_wrapper" not in thread.name} == {
        "tidings-topic-client",
        "tidings-cache-client",
        f"tidings-subscription:{cache}/t",
    }
    assert set(threading.enumerate()) - before == set()
    assert [is_cancelled(item) for item in endings] == [True]
    assert [is_cancelled(item) for item in iterated] == [True]
    assert with_callbacks.is_closed
    assert iterated.is_closed


async def test_lifecycle_async_clients_leave_no_tasks_or_channels(server: ServerProcess, cache: str) -> None:
    tasks_before = asyncio.all_tasks()
    channels_before = open_channels()
    endings: list[SubscriptionItem] = []
    delivered = asyncio.Event()

    async with TopicClientAsync(server.endpoint) as client, CacheClientAsync(server.endpoint) as caches:
        await caches.list_caches()
        with_callbacks = await client.subscribe(
            cache, "t", on_item=lambda item: delivered.set(), on_error=endings.append
        )
        iterated = await client.subscribe(cache, "t")
        assert isinstance(iterated, TopicSubscribe.SubscriptionAsync)
        await client.publish(cache, "t", "x")
        await asyncio.wait_for(delivered.wait(), WITHIN)
        assert isinstance(await iterated.__anext__(), TopicSubscriptionItem.Text)
        ours = {task.get_name() for task in asyncio.all_tasks() - tasks_before if task.get_name().startswith("tidings")}
        assert ours == {f"tidings-subscription:{cache}/t"}  # the callback delivery task; grpc.aio has its own
        assert open_channels() == channels_before + 2

    leftover = asyncio.all_tasks() - tasks_before
    if leftover:  # grpc.aio's own per-call tasks may end a loop turn or two after their channel closed
        await asyncio.wait(leftover, timeout=WITHIN)
    assert asyncio.all_tasks() == tasks_before
    assert open_channels() == channels_before
    assert [is_cancelled(item) for item in endings] == [True]
    assert [is_cancelled(item) async for item in iterated] == [True]
    assert with_callbacks.is_closed  # type: ignore[union-attr]


async def test_lifecycle_async_client_is_unusable_after_close(server: ServerProcess) -> None:
    client = TopicClientAsync(server.endpoint)
    caches = CacheClientAsync(server.endpoint)
    await client.close()
    await caches.close()
    await client.close()  # idempotent

    with pytest.raises(RuntimeError, match="closed"):
        await client.publish("c", "t", "v")
    with pytest.raises(RuntimeError, match="closed"):
        await client.subscribe("c", "t")
    with pytest.raises(RuntimeError, match="closed"):
        await caches.list_caches()
    assert "closed" in repr(client)


def test_lifecycle_sync_client_is_unusable_after_close(server: ServerProcess) -> None:
    client = TopicClient(server.endpoint)
    client.close()
    client.close()  # idempotent

    with pytest.raises(RuntimeError, match="closed"):
        client.publish("c", "t", "v")
    assert "closed" in repr(client)


def test_lifecycle_closing_from_a_callback_does_not_deadlock(server: ServerProcess, cache: str) -> None:
    client = TopicClient(server.endpoint)
    closed = threading.Event()

    def close_on_first_item(item: SubscriptionItem) -> None:
        client.close()
        closed.set()

    subscription = client.subscribe(cache, "t", on_item=close_on_first_item)
    assert isinstance(subscription, TopicSubscribe.Subscription)
    client.publish(cache, "t", "x")

    assert closed.wait(WITHIN)
    subscription.join(WITHIN)
    assert subscription.is_closed
    assert not any(thread.name.startswith("tidings-") for thread in threading.enumerate())
