"""Two tidings nodes on one real redis-server: one topic, the same numbers on both, resume from either."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import grpc.aio
import httpx
import pytest
from momento import TopicClientAsync, TopicConfigurations
from momento.responses import TopicPublish, TopicSubscribe, TopicSubscriptionItem
from momento_wire_types import cachepubsub_pb2 as pb
from momento_wire_types import cachepubsub_pb2_grpc, controlclient_pb2, controlclient_pb2_grpc

from tests._redis import RedisServer
from tests.integration._server import ServerProcess
from tests.integration._wire import open_subscription, publish, read_items, read_non_heartbeat, status_of

from .conftest import SDK_TIMEOUT, create_cache, credentials
from .test_official_node_sdk import node_subscriber, run_node

Nodes = tuple[ServerProcess, ServerProcess]


def start_node(directory: Path, redis: RedisServer, *args: str, env: dict[str, str] | None = None) -> ServerProcess:
    process = ServerProcess(directory, ("--redis-url", redis.url, "--heartbeat-interval", "1", *args))
    process.env = env or {}
    return process.start()


@pytest.fixture
def nodes(tmp_path: Path, redis_server: RedisServer) -> Iterator[Nodes]:
    """Node A and node B, sharing the session's redis-server."""
    started = [start_node(tmp_path / "a", redis_server), start_node(tmp_path / "b", redis_server)]
    yield started[0], started[1]
    for node in started:
        node.stop()


@pytest.fixture
async def stubs(nodes: Nodes) -> AsyncIterator[tuple[cachepubsub_pb2_grpc.PubsubStub, cachepubsub_pb2_grpc.PubsubStub]]:
    async with grpc.aio.insecure_channel(nodes[0].endpoint) as a, grpc.aio.insecure_channel(nodes[1].endpoint) as b:
        yield cachepubsub_pb2_grpc.PubsubStub(a), cachepubsub_pb2_grpc.PubsubStub(b)


def _sdk(node: ServerProcess) -> TopicClientAsync:
    return TopicClientAsync(TopicConfigurations.Default.v1().with_client_timeout(SDK_TIMEOUT), credentials(node))


async def test_official_sdk_publish_on_one_node_reaches_subscribers_of_both_with_the_same_numbers(
    nodes: Nodes,
) -> None:
    # Arrange: the cache is created on A; B knows it from Redis.
    node_a, node_b = nodes
    cache = create_cache(node_a)
    async with _sdk(node_a) as client_a, _sdk(node_b) as client_b:
        on_a = await client_a.subscribe(cache, "orders")
        on_b = await client_b.subscribe(cache, "orders")
        assert isinstance(on_a, TopicSubscribe.SubscriptionAsync), on_a
        assert isinstance(on_b, TopicSubscribe.SubscriptionAsync), on_b

        # Act
        for value in ("one", "two", "three"):
            assert isinstance(await client_a.publish(cache, "orders", value), TopicPublish.Success)
        received = [[await asyncio.wait_for(s.__anext__(), 10) for _ in range(3)] for s in (on_a, on_b)]
        on_a.unsubscribe()
        on_b.unsubscribe()

    # Assert
    views = [[(i.value, i.sequence_number, i.sequence_page) for i in items] for items in received]  # type: ignore[attr-defined]
    assert all(isinstance(i, TopicSubscriptionItem.Text) for items in received for i in items)
    assert views[0] == views[1]
    assert [(v, n) for v, n, _ in views[1]] == [("one", 1), ("two", 2), ("three", 3)]
    assert len({page for _, _, page in views[1]}) == 1


async def test_subscriber_resumes_on_the_other_node_without_loss_or_repeat(
    nodes: Nodes, stubs: tuple[cachepubsub_pb2_grpc.PubsubStub, cachepubsub_pb2_grpc.PubsubStub]
) -> None:
    # Arrange
    cache = create_cache(nodes[0])
    stub_a, stub_b = stubs
    call = await open_subscription(stub_b, cache, "t", resume_at=1)
    for i in range(1, 4):
        await publish(stub_a, cache, "t", f"m{i}")
    first = await read_items(call, 3)
    call.cancel()
    for i in range(4, 7):
        await publish(stub_b, cache, "t", f"m{i}")

    # Act: resume on A where B left off
    last = first[-1]
    resumed = await open_subscription(stub_a, cache, "t", last.topic_sequence_number + 1, last.sequence_page)
    rest = await read_items(resumed, 3)
    resumed.cancel()

    # Assert
    items = first + rest
    assert [i.value.text for i in items] == [f"m{i}" for i in range(1, 7)]
    assert [i.topic_sequence_number for i in items] == list(range(1, 7))
    assert {i.sequence_page for i in items} == {last.sequence_page}


async def test_cache_created_on_one_node_is_known_on_the_other(nodes: Nodes) -> None:
    # Arrange
    cache = create_cache(nodes[0])

    # Act
    async with _sdk(nodes[1]) as client:
        published = await client.publish(cache, "t", "hello")

    # Assert
    assert isinstance(published, TopicPublish.Success), published


async def _expect_exactly(
    stub: cachepubsub_pb2_grpc.PubsubStub, cache: str, topic: str, resume_at: int, last: int
) -> list[int]:
    call = await open_subscription(stub, cache, topic, resume_at)
    seen: list[int] = []
    try:
        while not seen or seen[-1] < last:
            message = await read_non_heartbeat(call)
            assert message.WhichOneof("kind") == "item", message
            assert message.item.value.text == str(message.item.topic_sequence_number)
            seen.append(message.item.topic_sequence_number)
    finally:
        call.cancel()
    return seen


async def test_resumes_racing_a_hammering_publisher_see_every_number_exactly_once(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    # Arrange: node B waits between its channel subscription and the stream read (the window the merge covers).
    node_a = start_node(tmp_path / "a", redis_server)
    node_b = start_node(tmp_path / "b", redis_server, env={"TIDINGS_TEST_FOLLOW_DELAY": "0.1"})
    cache = create_cache(node_a)
    topics, last, subscribers = 6, 300, 4
    rng = random.Random(8)
    try:
        async with grpc.aio.insecure_channel(node_a.endpoint) as a, grpc.aio.insecure_channel(node_b.endpoint) as b:
            stub_a, stub_b = cachepubsub_pb2_grpc.PubsubStub(a), cachepubsub_pb2_grpc.PubsubStub(b)

            # Act: per topic, a publisher on A; meanwhile subscribers on B resume from random positions up to what
            # A has acknowledged (a client that saw those messages on A), some racing B's first stream read.
            async def topic_run(name: str) -> list[tuple[int, list[int]]]:
                acknowledged = 0
                progress = asyncio.Event()

                async def hammer() -> None:
                    nonlocal acknowledged
                    for i in range(1, last + 1):
                        await publish(stub_a, cache, name, str(i))
                        acknowledged = i
                        progress.set()

                publisher = asyncio.create_task(hammer())
                runs = []
                for j in range(subscribers):
                    while acknowledged < 1 + j * last // subscribers:
                        progress.clear()
                        await progress.wait()
                    start = rng.randint(1, acknowledged + 1)
                    runs.append((start, asyncio.create_task(_expect_exactly(stub_b, cache, name, start, last))))
                await publisher
                return [(start, await reader) for start, reader in runs]

            results = await asyncio.wait_for(asyncio.gather(*(topic_run(f"t{t}") for t in range(topics))), 90)
    finally:
        node_a.stop()
        node_b.stop()

    # Assert
    for runs in results:
        for start, seen in runs:
            assert seen == list(range(start, last + 1))


async def test_metrics_show_redis_round_trips_and_health(
    nodes: Nodes, stubs: tuple[cachepubsub_pb2_grpc.PubsubStub, cachepubsub_pb2_grpc.PubsubStub]
) -> None:
    # Arrange
    cache = create_cache(nodes[0])
    await publish(stubs[0], cache, "t", "counted")

    # Act
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"{nodes[0].http_url}/metrics")).text
    samples = {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines() if line and line[0] != "#"}

    # Assert
    assert samples["tidings_redis_up"] == 1
    assert samples["tidings_redis_round_trip_seconds_count"] >= 1
    assert samples["tidings_redis_errors_total"] == 0
    assert "tidings_redis_backfills_total" in samples


async def test_official_node_sdk_publishes_on_one_node_and_subscribes_on_the_other(nodes: Nodes) -> None:
    # Arrange
    node_a, node_b = nodes
    cache = create_cache(node_a)

    # Act: the Node subscriber on B runs past its SDK's 5 s first-stream deadline, so it resubscribes (on B)
    async with node_subscriber(node_b, cache, "--count", "5", "--seconds", "60") as subscriber:
        await asyncio.to_thread(run_node, node_a, "publish", "--cache", cache, "--topic", "t", "--count", "5")
        exit_code = await subscriber.finish()

    # Assert
    items = subscriber.of_kind("item")
    assert exit_code == 0
    assert [(i["sequence_number"], i["value"]) for i in items] == [(n, f"msg-{n}") for n in range(1, 6)]
    assert len({i["sequence_page"] for i in items}) == 1
    assert subscriber.of_kind("discontinuity") == []


async def test_cache_deleted_on_one_node_ends_its_subscriptions_on_the_other(
    nodes: Nodes, stubs: tuple[cachepubsub_pb2_grpc.PubsubStub, cachepubsub_pb2_grpc.PubsubStub]
) -> None:
    # Arrange
    node_a, _ = nodes
    cache = create_cache(node_a)
    _, stub_b = stubs
    call = await open_subscription(stub_b, cache, "t", resume_at=1)

    # Act
    async with grpc.aio.insecure_channel(node_a.endpoint) as channel:
        await controlclient_pb2_grpc.ScsControlStub(channel).DeleteCache(
            controlclient_pb2._DeleteCacheRequest(cache_name=cache), timeout=10
        )
    ended = await status_of(call)
    with pytest.raises(grpc.aio.AioRpcError) as publishing:
        await publish(stub_b, cache, "t", "too late")

    # Assert
    assert ended.code() == grpc.StatusCode.NOT_FOUND
    assert publishing.value.code() == grpc.StatusCode.NOT_FOUND


def _tidings(*args: str) -> str:
    """Run the CLI; its standard output."""
    return subprocess.run(
        [sys.executable, "-m", "tidings", *args], capture_output=True, text=True, timeout=60, check=True
    ).stdout


async def test_key_commands_manage_the_keys_every_node_shares(tmp_path: Path, redis_server: RedisServer) -> None:
    # Arrange: a read-only key made with the CLI in Redis, before the node starts
    key = _tidings("key", "create", "--redis-url", redis_server.url, "readonly:*").strip()
    node = start_node(tmp_path / "node", redis_server)
    cache = create_cache(node)
    try:
        # Act
        async with grpc.aio.insecure_channel(node.endpoint) as channel:
            stub = cachepubsub_pb2_grpc.PubsubStub(channel)
            request = pb._PublishRequest(cache_name=cache, topic="t", value=pb._TopicValue(text="x"))
            with pytest.raises(grpc.aio.AioRpcError) as restricted:
                await stub.Publish(request, metadata=(("authorization", key),), timeout=10)
            with pytest.raises(grpc.aio.AioRpcError) as unknown:
                await stub.Publish(request, metadata=(("authorization", key[:-4] + "AAAA"),), timeout=10)
        listed = await asyncio.to_thread(_tidings, "key", "list", "--redis-url", redis_server.url, "--json")
    finally:
        node.stop()

    # Assert: the node knows the key (and what it may do); the CLI lists it
    assert restricted.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert unknown.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert key.split("_")[1] in listed
