"""Webhooks end to end: managed with the official Node SDK, delivered by a real tidings server to a real local
HTTP receiver (tests/integration/_receiver.py), messages published with the official Python SDK or raw gRPC."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import grpc.aio
import httpx
import pytest
from momento import TopicClient
from momento.responses import TopicPublish
from momento_wire_types import cachepubsub_pb2_grpc

from tests.integration._receiver import HANG, Delivery, Receiver
from tests.integration._server import ServerProcess
from tests.integration._wire import open_subscription, publish, read_items
from tests.integration.conftest import create_cache
from tests.integration.test_official_node_sdk import run_node
from tidings.webhooks import SIGNATURE_HEADER, verify

TOPIC = "events"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


def node_webhook(server: ServerProcess, cache: str, *actions: str, **options: str) -> list[dict[str, Any]]:
    """Run the Node SDK's webhook calls in order; returns their JSON lines."""
    args = ["--cache", cache, "--topic", options.pop("topic", TOPIC)]
    for action in actions:
        args += ["--action", action]
    for name, value in options.items():
        args += [f"--{name.replace('_', '-')}", value] if value else [f"--{name.replace('_', '-')}"]
    return run_node(server, "webhook", *args)


def put(server: ServerProcess, cache: str, url: str, name: str = "hook", topic: str = TOPIC) -> str:
    (line,) = node_webhook(server, cache, "put", webhook=name, url=url, topic=topic)
    secret: str = line["put"]["secret"]
    return secret


def publish_texts(topic_client: TopicClient, cache: str, values: list[str], topic: str = TOPIC) -> None:
    for value in values:
        assert isinstance(topic_client.publish(cache, topic, value), TopicPublish.Success)


def events(deliveries: list[Delivery]) -> list[dict[str, Any]]:
    return [json.loads(delivery.body) for delivery in deliveries]


async def wait_for(receiver: Receiver, count: int) -> list[Delivery]:
    return await asyncio.to_thread(receiver.wait_for, count)


async def test_node_sdk_manages_webhooks(server: ServerProcess, cache: str, receiver: Receiver) -> None:
    # Act
    lines = node_webhook(
        server, cache, "put", "list", "get-secret", "rotate", "get-secret", "put", "delete", "list", url=receiver.url
    )

    # Assert
    put_line, listed, got, rotated, got_again, replaced, deleted, empty = lines
    secret = put_line["put"]["secret"]
    assert listed == {"list": [{"cache": cache, "name": "hook", "topic": TOPIC, "url": receiver.url}]}
    assert got == {"get_secret": {"secret": secret, "webhook": "hook", "cache": cache}}
    assert rotated["rotate"]["secret"] not in ("", secret)
    assert got_again["get_secret"]["secret"] == rotated["rotate"]["secret"]
    assert replaced["put"]["secret"] == rotated["rotate"]["secret"]  # replacing keeps the secret
    assert deleted == {"delete": {}}
    assert empty == {"list": []}


async def test_burst_arrives_in_order_signed(
    server: ServerProcess, cache: str, receiver: Receiver, topic_client: TopicClient
) -> None:
    # Arrange
    secret = put(server, cache, receiver.url)
    values = [f"msg-{i}" for i in range(1, 41)]

    # Act
    publish_texts(topic_client, cache, values)
    assert isinstance(topic_client.publish(cache, TOPIC, b"\x00\x01binary"), TopicPublish.Success)
    deliveries = await wait_for(receiver, 41)

    # Assert
    received = events(deliveries)
    assert [event.get("text") for event in received[:40]] == values
    assert received[40]["binary"] == "AAFiaW5hcnk="
    assert [event["topic_sequence_number"] for event in received] == list(range(1, 42))
    assert {event["sequence_page"] for event in received} != {0}
    assert len({event["sequence_page"] for event in received}) == 1
    first = received[0]
    assert list(first) == [
        "cache", "topic", "event_timestamp", "publish_timestamp", "topic_sequence_number", "token_id", "text",
        "sequence_page",
    ]  # fmt: skip
    assert (first["cache"], first["topic"], first["token_id"]) == (cache, TOPIC, "")
    assert first["event_timestamp"] >= first["publish_timestamp"] > 1_600_000_000_000
    for delivery in deliveries:
        assert verify(delivery.body, delivery.headers[SIGNATURE_HEADER], secret)
        assert delivery.headers["content-type"] == "application/json"
        assert delivery.headers["user-agent"].startswith("tidings-webhooks/")


async def test_a_burst_goes_over_one_kept_alive_connection(
    server: ServerProcess, cache: str, receiver: Receiver, topic_client: TopicClient
) -> None:
    # Arrange
    put(server, cache, receiver.url)

    # Act
    publish_texts(topic_client, cache, [f"msg-{i}" for i in range(20)])
    deliveries = await wait_for(receiver, 20)

    # Assert
    assert len({delivery.client_port for delivery in deliveries}) == 1
    assert deliveries[0].headers["host"] == receiver.url.split("/")[2]


async def test_a_failed_delivery_is_retried_before_the_next_message(
    server: ServerProcess, cache: str, receiver: Receiver, topic_client: TopicClient
) -> None:
    # Arrange
    put(server, cache, receiver.url)
    receiver.answer(500, 429)

    # Act
    publish_texts(topic_client, cache, ["first", "second"])
    deliveries = await wait_for(receiver, 4)

    # Assert
    assert [
        (event["text"], delivery.status) for event, delivery in zip(events(deliveries), deliveries, strict=True)
    ] == [
        ("first", 500),
        ("first", 429),
        ("first", 200),
        ("second", 200),
    ]
    assert deliveries[0].body == deliveries[2].body  # the same event, byte for byte


@pytest.mark.parametrize("status", [400, 404, 302], ids=["400", "404", "redirect-not-followed"])
async def test_a_refused_delivery_is_not_retried(
    server: ServerProcess, cache: str, receiver: Receiver, topic_client: TopicClient, status: int
) -> None:
    # Arrange
    put(server, cache, receiver.url)
    receiver.answer(status)

    # Act
    publish_texts(topic_client, cache, ["refused", "next"])
    deliveries = await wait_for(receiver, 2)

    # Assert
    assert [event["text"] for event in events(deliveries)] == ["refused", "next"]
    assert [delivery.path for delivery in deliveries] == ["/hook", "/hook"]


async def test_a_hanging_receiver_does_not_delay_a_subscriber(
    server: ServerProcess, cache: str, receiver: Receiver, channel: grpc.aio.Channel
) -> None:
    # Arrange
    put(server, cache, receiver.url)
    receiver.answer(HANG)
    stub = cachepubsub_pb2_grpc.PubsubStub(channel)
    call = await open_subscription(stub, cache, TOPIC)

    # Act
    for i in range(5):
        await publish(stub, cache, TOPIC, f"m{i}")
    items = await asyncio.wait_for(read_items(call, 5), 3.0)  # well within the webhook's 5 s timeout

    # Assert: the subscriber had every message while the webhook's first POST hangs (it may reach the receiver
    # only after the subscriber read them all); one at a time, in order, so no second POST follows it.
    assert [item.value.text for item in items] == [f"m{i}" for i in range(5)]
    hanging = await wait_for(receiver, 1)
    assert [delivery.status for delivery in hanging] == [HANG]
    assert [delivery.status for delivery in receiver.deliveries] == [HANG]
    call.cancel()


async def test_rotating_the_secret_changes_the_signature(
    server: ServerProcess, cache: str, receiver: Receiver, topic_client: TopicClient
) -> None:
    # Arrange
    old = put(server, cache, receiver.url)
    publish_texts(topic_client, cache, ["before"])
    await wait_for(receiver, 1)

    # Act
    (line,) = node_webhook(server, cache, "rotate", webhook="hook")
    new = line["rotate"]["secret"]
    publish_texts(topic_client, cache, ["after"])
    before, after = await wait_for(receiver, 2)

    # Assert
    assert verify(before.body, before.headers[SIGNATURE_HEADER], old)
    assert verify(after.body, after.headers[SIGNATURE_HEADER], new)
    assert not verify(after.body, after.headers[SIGNATURE_HEADER], old)


async def test_delete_stops_deliveries(
    server: ServerProcess, cache: str, receiver: Receiver, topic_client: TopicClient
) -> None:
    # Arrange
    put(server, cache, receiver.url, name="hook")
    put(server, cache, receiver.url.replace("/hook", "/witness"), name="witness")
    publish_texts(topic_client, cache, ["both"])
    await wait_for(receiver, 2)

    # Act
    node_webhook(server, cache, "delete", webhook="hook")
    publish_texts(topic_client, cache, ["witness only"])
    deliveries = await wait_for(receiver, 3)

    # Assert
    assert deliveries[2].path == "/witness"
    assert sorted(delivery.path for delivery in receiver.deliveries) == ["/hook", "/witness", "/witness"]


async def test_deleting_the_cache_removes_its_webhooks(server: ServerProcess, receiver: Receiver) -> None:
    # Arrange
    cache = create_cache(server)
    put(server, cache, receiver.url)

    # Act
    run_node(server, "delete-cache", "--cache", cache)
    create_cache(server, cache)

    # Assert
    assert node_webhook(server, cache, "list") == [{"list": []}]


@pytest.mark.parametrize(
    ("cache_name", "name", "url", "code"),
    [
        pytest.param(None, "hook", "ftp://127.0.0.1/x", "INVALID_ARGUMENT_ERROR", id="not-http"),
        pytest.param(None, "hook", "http://", "INVALID_ARGUMENT_ERROR", id="no-host"),
        pytest.param(None, "hook", "not a url", "INVALID_ARGUMENT_ERROR", id="not-a-url"),
        pytest.param(None, "bad\x01name", "http://127.0.0.1:9/", "INVALID_ARGUMENT_ERROR", id="control-in-name"),
        pytest.param(None, "x" * 300, "http://127.0.0.1:9/", "INVALID_ARGUMENT_ERROR", id="long-name"),
        pytest.param("no-such-cache", "hook", "http://127.0.0.1:9/", "NOT_FOUND_ERROR", id="unknown-cache"),
    ],
)
def test_bad_webhooks_are_refused(
    server: ServerProcess, cache: str, cache_name: str | None, name: str, url: str, code: str
) -> None:
    # Act
    (line,) = node_webhook(server, cache_name or cache, "put", webhook=name, url=url, keep_going="")

    # Assert
    assert line["webhook_error"]["code"] == code
    assert node_webhook(server, cache, "list") == [{"list": []}]


async def test_webhooks_survive_a_restart(start_server: Callable[..., ServerProcess], receiver: Receiver) -> None:
    # Arrange
    server = start_server()
    cache = create_cache(server)
    secret = put(server, cache, receiver.url)

    # Act
    server.restart()
    listed = node_webhook(server, cache, "list")
    async with grpc.aio.insecure_channel(server.endpoint) as channel:
        await publish(cachepubsub_pb2_grpc.PubsubStub(channel), cache, TOPIC, "after restart")
    (delivery,) = await wait_for(receiver, 1)

    # Assert
    assert listed == [{"list": [{"cache": cache, "name": "hook", "topic": TOPIC, "url": receiver.url}]}]
    assert json.loads(delivery.body)["text"] == "after restart"
    assert verify(delivery.body, delivery.headers[SIGNATURE_HEADER], secret)


async def test_metrics_count_deliveries_failures_and_lag(
    server: ServerProcess, cache: str, receiver: Receiver, topic_client: TopicClient
) -> None:
    # Arrange
    put(server, cache, receiver.url)
    receiver.answer(503, 200, HANG)

    # Act
    publish_texts(topic_client, cache, ["one", "two", "three"])
    await wait_for(receiver, 3)  # "two" is in flight, so "one" was counted
    async with httpx.AsyncClient() as client:
        metrics = (await client.get(f"{server.http_url}/metrics")).text

    # Assert
    labels = f'cache="{cache}",webhook="hook"'
    webhook_lines = [line for line in metrics.splitlines() if line.startswith("tidings_webhook") and cache in line]
    assert f"tidings_webhook_deliveries_total{{{labels}}} 1.0" in webhook_lines
    failures = f'tidings_webhook_failures_total{{cache="{cache}",reason="status_5xx",webhook="hook"}} 1.0'
    assert failures in webhook_lines
    assert f"tidings_webhook_retries_total{{{labels}}} 1.0" in webhook_lines
    assert f"tidings_webhook_lag_messages{{{labels}}} 2.0" in webhook_lines  # "two" in flight, "three" waiting


async def test_deny_private_refuses_loopback_endpoints(
    start_server: Callable[..., ServerProcess], receiver: Receiver
) -> None:
    # Arrange
    server = start_server("--webhook-deny-private")
    cache = create_cache(server)
    put(server, cache, receiver.url)

    # Act
    async with grpc.aio.insecure_channel(server.endpoint) as channel:
        await publish(cachepubsub_pb2_grpc.PubsubStub(channel), cache, TOPIC, "to loopback")
    await asyncio.to_thread(server.wait_for_log, r"gave up on message 1 .*: private_address")

    # Assert
    assert receiver.deliveries == []


async def test_messages_that_left_retention_are_recorded_as_a_gap(
    start_server: Callable[..., ServerProcess], receiver: Receiver
) -> None:
    # Arrange
    server = start_server("--retention-messages", "3", "--webhook-timeout", "1")
    cache = create_cache(server)
    put(server, cache, receiver.url)
    receiver.answer(HANG)
    async with grpc.aio.insecure_channel(server.endpoint) as channel:
        stub = cachepubsub_pb2_grpc.PubsubStub(channel)
        await publish(stub, cache, TOPIC, "m1")
        await wait_for(receiver, 1)  # m1 hangs: the webhook waits while the topic moves on

        # Act
        for i in range(2, 11):
            await publish(stub, cache, TOPIC, f"m{i}")
        deliveries = await wait_for(receiver, 5)
    (gap,) = await asyncio.to_thread(server.wait_for_log, r"skipped ahead on topic .*: (\d+) messages left")

    # Assert
    assert [event["text"] for event in events(deliveries)] == ["m1", "m1", "m8", "m9", "m10"]
    assert gap.group(1) == "6"


async def test_messages_wait_through_an_outage_of_the_receiver(
    server: ServerProcess, cache: str, topic_client: TopicClient
) -> None:
    with Receiver(listening=False) as down:
        # Arrange
        put(server, cache, down.url)
        publish_texts(topic_client, cache, ["during", "the outage"])
        await asyncio.to_thread(
            server.wait_for_log,
            rf"webhook 'hook' of cache '{cache}' is failing: delivery of message 1 .*failed \(connection\)",
        )

        # Act
        down.listen()
        deliveries = await wait_for(down, 2)

    # Assert
    assert [event["text"] for event in events(deliveries)] == ["during", "the outage"]


async def test_a_hanging_endpoint_does_not_delay_another_webhook(
    server: ServerProcess, cache: str, topic_client: TopicClient
) -> None:
    with Receiver(hang_paths=frozenset({"/slow"})) as receiver:
        # Arrange
        put(server, cache, receiver.url.replace("/hook", "/slow"), name="slow")
        put(server, cache, receiver.url.replace("/hook", "/fast"), name="fast")

        # Act
        publish_texts(topic_client, cache, [f"m{i}" for i in range(5)])
        deliveries = await asyncio.wait_for(wait_for(receiver, 6), 4.0)  # within the slow one's 5 s timeout

    # Assert
    fast = [json.loads(d.body)["text"] for d in deliveries if d.path == "/fast"]
    assert fast == [f"m{i}" for i in range(5)]
    assert [d.path for d in deliveries].count("/slow") == 1
