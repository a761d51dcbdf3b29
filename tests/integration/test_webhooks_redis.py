"""Webhooks on two tidings nodes sharing one real redis-server: one node delivers each webhook at a time (a
lease in Redis), and when it dies another takes over where it stopped (the cursor in Redis)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._redis import RedisServer
from tests.integration._receiver import Delivery, Receiver
from tests.integration._server import ServerProcess
from tests.integration.conftest import create_cache
from tests.integration.test_redis_nodes import start_node
from tidings import ListWebhooks, PutWebhook, TopicClientAsync, TopicPublish
from tidings.webhooks import SIGNATURE_HEADER, verify

LEASE_SECONDS = "2"
HOLDING = r"webhook 'hook' of cache '[^']+': delivering from this node"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


@pytest.fixture
def nodes(tmp_path: Path, redis_server: RedisServer) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    env = {"TIDINGS_TEST_WEBHOOK_LEASE_SECONDS": LEASE_SECONDS}
    started = [start_node(tmp_path / name, redis_server, env=env) for name in ("a", "b")]
    yield started[0], started[1]
    for node in started:
        node.stop()


def _sequence(deliveries: list[Delivery]) -> list[int]:
    return [json.loads(delivery.body)["topic_sequence_number"] for delivery in deliveries]


def _holder(nodes: tuple[ServerProcess, ServerProcess]) -> ServerProcess:
    holders = [node for node in nodes if any(re.search(HOLDING, line) for line in node.log)]
    assert len(holders) == 1, "exactly one node delivers the webhook"
    return holders[0]


async def _publish(node: ServerProcess, cache: str, values: list[str]) -> None:
    async with TopicClientAsync(node.endpoint, timeout=20) as client:
        for value in values:
            assert isinstance(await client.publish(cache, "events", value), TopicPublish.Success)


async def test_one_node_delivers_each_message_once_and_both_manage_it(
    nodes: tuple[ServerProcess, ServerProcess], receiver: Receiver
) -> None:
    # Arrange
    node_a, node_b = nodes
    cache = create_cache(node_a)
    async with TopicClientAsync(node_a.endpoint, timeout=20) as on_a, TopicClientAsync(node_b.endpoint) as on_b:
        put = await on_a.put_webhook(cache, "hook", "events", receiver.url)
        assert isinstance(put, PutWebhook.Success)
        listed_on_b = await on_b.list_webhooks(cache)
        secret_on_b = await on_b.get_webhook_secret(cache, "hook")

    # Act
    await _publish(node_b, cache, [f"m{i}" for i in range(1, 21)])
    deliveries = await asyncio.to_thread(receiver.wait_for, 20)

    # Assert
    assert isinstance(listed_on_b, ListWebhooks.Success)
    assert listed_on_b.webhook_names == ["hook"]
    assert getattr(secret_on_b, "secret", None) == put.secret
    assert _sequence(deliveries) == list(range(1, 21))  # a second deliverer would repeat messages
    assert all(verify(d.body, d.headers[SIGNATURE_HEADER], put.secret) for d in deliveries)
    _holder(nodes)


async def _holder_then_survivor(
    tmp_path: Path, redis_server: RedisServer, receiver: Receiver, lease_seconds: str
) -> tuple[ServerProcess, ServerProcess, str]:
    """(holder, survivor, cache): node A with a webhook "hook" on topic "events" whose lease it holds, then node
    B, started after A took the lease."""
    env = {"TIDINGS_TEST_WEBHOOK_LEASE_SECONDS": lease_seconds}
    holder = start_node(tmp_path / "a", redis_server, env=env)
    cache = create_cache(holder)
    async with TopicClientAsync(holder.endpoint, timeout=20) as client:
        assert isinstance(await client.put_webhook(cache, "hook", "events", receiver.url), PutWebhook.Success)
    holder.wait_for_log(HOLDING)
    return holder, start_node(tmp_path / "b", redis_server, env=env), cache


async def test_a_surviving_node_takes_over_where_the_dead_one_stopped(
    tmp_path: Path, redis_server: RedisServer, receiver: Receiver
) -> None:
    # Arrange: A holds the webhook (B starts after A took its lease).
    holder, survivor, cache = await _holder_then_survivor(tmp_path, redis_server, receiver, LEASE_SECONDS)
    try:
        await _publish(survivor, cache, ["m1", "m2", "m3"])
        await asyncio.to_thread(receiver.wait_for, 3)

        # Act
        holder.kill()
        await _publish(survivor, cache, ["m4", "m5", "m6"])
        await asyncio.to_thread(survivor.wait_for_log, HOLDING)
        deliveries = await asyncio.to_thread(_wait_for_sequence, receiver, 6)
    finally:
        survivor.stop()

    # Assert
    delivered = _sequence(deliveries)
    assert delivered[:3] == [1, 2, 3]
    assert sorted(set(delivered)) == [1, 2, 3, 4, 5, 6]  # nothing lost across the takeover
    assert delivered.count(3) <= 2  # at most the message in flight at the kill is repeated
    assert all(delivered.count(n) == 1 for n in (1, 2, 4, 5, 6))


def _wait_for_sequence(receiver: Receiver, last: int) -> list[Delivery]:
    """Deliveries until one carries sequence number ``last``."""
    count = 1
    while True:
        deliveries = receiver.wait_for(count)
        if last in _sequence(deliveries):
            return deliveries
        count += 1


async def test_a_stopping_node_hands_its_webhooks_over_at_once(
    tmp_path: Path, redis_server: RedisServer, receiver: Receiver
) -> None:
    # Arrange: leases of 20 s; the survivor seeks free ones every 5 s.
    holder, survivor, cache = await _holder_then_survivor(tmp_path, redis_server, receiver, "20")
    try:
        # Act
        assert holder.stop() == 0
        survivor.wait_for_log(HOLDING, timeout=12)  # well before the stopped node's lease would have run out
        await _publish(survivor, cache, ["after the handover"])
        (delivery,) = await asyncio.to_thread(receiver.wait_for, 1)
    finally:
        survivor.stop()

    # Assert
    assert json.loads(delivery.body)["text"] == "after the handover"
