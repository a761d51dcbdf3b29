"""Two tidings nodes on a real 3-master Redis Cluster: topics spread over the shards, sharded pub/sub."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc.aio
import pytest
from momento_wire_types import cachepubsub_pb2_grpc
from redis.cluster import RedisCluster as ClusterClient

from tests._redis import RedisCluster, ask_node
from tests.integration._server import ServerProcess
from tests.integration._wire import open_subscription, publish, read_items
from tidings.server.engine._redis_scripts import TopicKeys

from .conftest import create_cache

Stubs = tuple[cachepubsub_pb2_grpc.PubsubStub, cachepubsub_pb2_grpc.PubsubStub]
TOPICS = [f"topic-{i}" for i in range(12)]


@pytest.fixture
def cluster_nodes(tmp_path: Path, redis_cluster: RedisCluster) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    started = [
        ServerProcess(tmp_path / name, ("--redis-cluster", redis_cluster.url, "--heartbeat-interval", "1")).start()
        for name in ("a", "b")
    ]
    yield started[0], started[1]
    for node in started:
        node.stop()


@pytest.fixture
async def cluster_stubs(cluster_nodes: tuple[ServerProcess, ServerProcess]) -> AsyncIterator[Stubs]:
    a, b = cluster_nodes
    async with grpc.aio.insecure_channel(a.endpoint) as channel_a, grpc.aio.insecure_channel(b.endpoint) as channel_b:
        yield cachepubsub_pb2_grpc.PubsubStub(channel_a), cachepubsub_pb2_grpc.PubsubStub(channel_b)


async def test_cluster_publish_on_one_node_reaches_the_other_on_every_shard(
    cluster_nodes: tuple[ServerProcess, ServerProcess], cluster_stubs: Stubs, redis_cluster: RedisCluster
) -> None:
    # Arrange
    cache = create_cache(cluster_nodes[0])
    stub_a, stub_b = cluster_stubs
    calls = {topic: await open_subscription(stub_b, cache, topic, resume_at=1) for topic in TOPICS}

    # Act
    for topic in TOPICS:
        for value in ("x", "y"):
            await publish(stub_a, cache, topic, f"{topic}:{value}")
    received = {topic: await read_items(call, 2) for topic, call in calls.items()}
    with ClusterClient.from_url(redis_cluster.url, protocol=2) as client:
        owners = {topic: client.get_node_from_key(TopicKeys.of("tidings:", cache, topic).channel) for topic in TOPICS}
    # Each shard's owner is asked directly, and its raw reply read (redis-py's own PUBSUB SHARDNUMSUB parser
    # changed in 8.2 and broke this test once).
    sharded = {
        topic: ask_node(node.host, node.port, "PUBSUB", "SHARDNUMSUB", TopicKeys.of("tidings:", cache, topic).channel)
        for topic, node in owners.items()
    }
    for call in calls.values():
        call.cancel()

    # Assert
    for topic, items in received.items():
        assert [i.value.text for i in items] == [f"{topic}:x", f"{topic}:y"]
        assert [i.topic_sequence_number for i in items] == [1, 2]
    assert len({node.name for node in owners.values()}) == 3  # the topics are spread over every master
    assert all(reply[1] == 1 for reply in sharded.values()), sharded  # node B follows each on its owner


async def test_cluster_resume_on_the_other_node(
    cluster_nodes: tuple[ServerProcess, ServerProcess], cluster_stubs: Stubs
) -> None:
    # Arrange
    cache = create_cache(cluster_nodes[0])
    stub_a, stub_b = cluster_stubs
    for i in range(1, 4):
        await publish(stub_a, cache, "t", f"m{i}")
    first_call = await open_subscription(stub_a, cache, "t", resume_at=1)
    first = await read_items(first_call, 2)
    first_call.cancel()

    # Act
    resumed = await open_subscription(stub_b, cache, "t", first[-1].topic_sequence_number + 1, first[-1].sequence_page)
    rest = await read_items(resumed, 1)
    resumed.cancel()

    # Assert
    assert [i.value.text for i in first + rest] == ["m1", "m2", "m3"]
    assert {i.sequence_page for i in first + rest} == {first[0].sequence_page}
