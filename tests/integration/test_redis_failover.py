"""A Redis Cluster of 3 masters and 3 replicas failing over under load: a master SIGKILLed, and a graceful
``CLUSTER FAILOVER`` there and back. The tidings node must follow each failover by itself: publishes work again
within a few seconds of the promotion, subscribers continue on the same stream, and what they received matches
what the cluster kept (the new master's streams)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import cast

import grpc.aio
import httpx
import pytest
from momento_wire_types import cachepubsub_pb2_grpc

from tests._redis import RedisCluster, RedisServer, ask_node
from tests.integration._failover import PREFIX, FailoverLoad, Tally, retained, tally
from tests.integration._server import ServerProcess
from tests.integration._wire import open_subscription, publish, read_items, read_non_heartbeat
from tidings.server.engine._redis_scripts import TopicKeys

from .conftest import create_cache

# Publishes work again this soon after the replica is promoted (the node notices the lost master at once, and reads
# the slot map again with a backoff of at most 0.5 s).
RECOVERY_BOUND = 3.0
TOPICS = [f"topic-{i}" for i in range(8)]
INTERVAL = 0.02  # between one topic's publishes


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[RedisCluster]:
    """A fresh 3+3 cluster (tests kill and fail over its nodes); 1 s node timeout so that promotion is quick."""
    started = RedisCluster(tmp_path / "cluster", replicas=1, node_timeout_ms=1000).start()
    yield started
    started.stop()


@pytest.fixture
def node(tmp_path: Path, cluster: RedisCluster) -> Iterator[ServerProcess]:
    process = ServerProcess(
        tmp_path / "node", ("--redis-cluster", cluster.url, "--heartbeat-interval", "1", "--log-level", "debug")
    ).start()
    yield process
    process.stop()


@pytest.fixture
async def stub(node: ServerProcess) -> AsyncIterator[cachepubsub_pb2_grpc.PubsubStub]:
    async with grpc.aio.insecure_channel(node.endpoint) as channel:
        yield cachepubsub_pb2_grpc.PubsubStub(channel)


async def _ready_answers(node: ServerProcess, status: int, within: float) -> bool:
    """Whether ``/ready`` answers ``status`` within ``within`` seconds (asked every 50 ms: no event tells it)."""
    deadline = time.monotonic() + within
    async with httpx.AsyncClient() as http:
        while time.monotonic() < deadline:
            if (await http.get(f"{node.http_url}/ready")).status_code == status:
                return True
            await asyncio.sleep(0.05)
    return False


async def _metric(node: ServerProcess, name: str) -> float:
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"{node.http_url}/metrics")).text
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert match, f"{name} not in /metrics"
    return float(match.group(1))


async def _graceful_failover(cluster: RedisCluster, replica: RedisServer, slot: int) -> float:
    """``CLUSTER FAILOVER`` on ``replica``; returns when every node names it master of ``slot``.

    Redis gives a manual failover 5 s and then drops it without a word (a replica still syncing, or a busy
    master, can make it miss that), so it is asked again, once its link to the master is up, up to 4 times."""
    for attempt in range(4):
        await asyncio.to_thread(_wait_for_master_link, replica)
        assert ask_node("127.0.0.1", replica.port, "CLUSTER", "FAILOVER") == b"OK"
        try:
            return await asyncio.to_thread(cluster.wait_for_owner, slot, replica, 8.0)
        except TimeoutError:
            if attempt == 3:
                raise
    raise AssertionError("unreachable")


def _wait_for_master_link(replica: RedisServer, timeout: float = 30.0) -> None:
    """Wait until ``replica`` is in sync with its master (``master_link_status:up``; no event says so: asked
    every 20 ms)."""
    deadline = time.monotonic() + timeout
    while b"master_link_status:up" not in cast(bytes, ask_node("127.0.0.1", replica.port, "INFO", "replication")):
        if time.monotonic() > deadline:
            raise TimeoutError(f"replica 127.0.0.1:{replica.port} did not sync with its master")
        time.sleep(0.02)


def _summary(tallies: dict[str, Tally]) -> dict[str, int]:
    return {
        kind: sum(len(getattr(t, kind)) for t in tallies.values())
        for kind in ("missing", "duplicated", "unexplained", "lost_by_redis", "silently_lost")
    } | {"reordered": sum(t.reordered for t in tallies.values())}


async def test_failover_after_a_master_is_killed_is_followed_without_client_resubscribe(
    cluster: RedisCluster, node: ServerProcess, stub: cachepubsub_pb2_grpc.PubsubStub
) -> None:
    # Arrange: subscribers and publishers on topics over every shard
    cache = create_cache(node)
    load = FailoverLoad(stub, cache, TOPICS, INTERVAL)
    victim_topic = TOPICS[0]
    slot = load.runs[victim_topic].slot
    victim = cluster.owner_of(slot)
    replica = cluster.replica_of(victim)
    await load.start()
    await load.wait_for_ack(victim_topic, after=time.monotonic() + 1.0, within=10)

    # Act
    killed_at = time.monotonic()
    victim.stop()  # SIGKILL
    not_ready = await _ready_answers(node, 503, within=2)
    promoted_at = await asyncio.to_thread(cluster.wait_for_owner, slot, replica)
    working_at = await load.wait_for_ack(victim_topic, after=promoted_at, within=15)
    ready = await _ready_answers(node, 200, within=5)
    late = await open_subscription(stub, cache, victim_topic)  # opened after the failover: gets live messages
    late_items = await asyncio.wait_for(read_items(late, 3), 10)
    late.cancel()
    await load.wait_for_ack(victim_topic, after=time.monotonic() + 1.0, within=10)
    await load.stop()
    tallies = {topic: tally(run, retained(cluster, cache, topic)) for topic, run in load.runs.items()}
    failovers = await _metric(node, "tidings_redis_failovers_total")
    refreshes = await _metric(node, "tidings_redis_slot_map_refreshes_total")
    await asyncio.sleep(1.0)  # a time without failures: the slot map is not read again
    refreshes_later = await _metric(node, "tidings_redis_slot_map_refreshes_total")

    # Assert
    victim_run = load.runs[victim_topic]
    elsewhere = sum(len(r.refused) for r in load.runs.values() if cluster.owner_of(r.slot) is not replica)
    print(
        f"promoted {promoted_at - killed_at:.2f} s after the kill; publishes working again",
        f"{working_at - promoted_at:.2f} s after the promotion;",
        f"victim topic: {len(victim_run.acked)} acked, {len(victim_run.refused)} UNAVAILABLE,",
        f"{len(victim_run.unsure)} DEADLINE_EXCEEDED; other shards' topics:",
        f"{elsewhere} UNAVAILABLE; all topics: {_summary(tallies)}",
    )
    assert working_at - promoted_at < RECOVERY_BOUND
    assert (not_ready, ready) == (True, True)
    late_numbers = [i.topic_sequence_number for i in late_items]
    assert late_numbers == list(range(late_numbers[0], late_numbers[0] + 3))
    assert all(not run.stream_error for run in load.runs.values()), [r.stream_error for r in load.runs.values()]
    assert all(not run.other_errors for run in load.runs.values()), [r.other_errors for r in load.runs.values()]
    summary = _summary(tallies)
    # Only what Redis itself lost may be missing, and never silently.
    assert {k: v for k, v in summary.items() if k != "lost_by_redis"} == dict.fromkeys(
        ("missing", "duplicated", "unexplained", "silently_lost", "reordered"), 0
    ), tallies
    assert (failovers, refreshes >= 2, refreshes_later) == (1, True, refreshes)


async def test_graceful_failover_and_back_loses_nothing(
    cluster: RedisCluster, node: ServerProcess, stub: cachepubsub_pb2_grpc.PubsubStub
) -> None:
    # Arrange
    cache = create_cache(node)
    load = FailoverLoad(stub, cache, TOPICS, INTERVAL)
    victim_topic = TOPICS[0]
    slot = load.runs[victim_topic].slot
    master = cluster.owner_of(slot)
    replica = cluster.replica_of(master)
    await load.start()
    await load.wait_for_ack(victim_topic, after=time.monotonic() + 0.5, within=10)

    # Act: fail over to the replica, then back to the first master
    promoted_at = await _graceful_failover(cluster, replica, slot)
    working_at = await load.wait_for_ack(victim_topic, after=promoted_at, within=15)
    await load.wait_for_ack(victim_topic, after=time.monotonic() + 0.5, within=10)
    back_at = await _graceful_failover(cluster, master, slot)
    working_again_at = await load.wait_for_ack(victim_topic, after=back_at, within=15)
    await load.wait_for_ack(victim_topic, after=time.monotonic() + 0.5, within=10)
    await load.stop()
    tallies = {topic: tally(run, retained(cluster, cache, topic)) for topic, run in load.runs.items()}
    failovers = await _metric(node, "tidings_redis_failovers_total")

    # Assert
    runs = list(load.runs.values())
    print(
        f"publishes working {working_at - promoted_at:.2f} s / {working_again_at - back_at:.2f} s after each",
        f"promotion; UNAVAILABLE {sum(len(r.refused) for r in runs)}, DEADLINE_EXCEEDED",
        f"{sum(len(r.unsure) for r in runs)}; {_summary(tallies)}",
    )
    assert max(working_at - promoted_at, working_again_at - back_at) < RECOVERY_BOUND
    assert all(not run.stream_error for run in runs), [r.stream_error for r in runs]
    assert all(not run.other_errors for run in runs), [r.other_errors for r in runs]
    assert all(not run.discontinuities for run in runs), [r.discontinuities for r in runs]
    assert _summary(tallies) == dict.fromkeys(
        ("missing", "duplicated", "unexplained", "lost_by_redis", "silently_lost", "reordered"), 0
    ), tallies
    assert failovers == 2


def _masters(cluster: RedisCluster) -> list[RedisServer]:
    return [n for n in cluster.running() if ask_node("127.0.0.1", n.port, "ROLE")[0] == b"master"]


def _migrate_slot(cluster: RedisCluster, slot: int, source: RedisServer, target: RedisServer, pause: float) -> None:
    """Move ``slot`` from ``source`` to ``target`` as ``redis-cli --cluster reshard`` does, its keys in one
    MIGRATE, and wait ``pause`` seconds before handing the slot over: meanwhile ``source`` answers ``-ASK``."""
    source_id, target_id = (ask_node("127.0.0.1", n.port, "CLUSTER", "MYID") for n in (source, target))
    assert ask_node("127.0.0.1", target.port, "CLUSTER", "SETSLOT", str(slot), "IMPORTING", source_id) == b"OK"
    assert ask_node("127.0.0.1", source.port, "CLUSTER", "SETSLOT", str(slot), "MIGRATING", target_id) == b"OK"
    keys = ask_node("127.0.0.1", source.port, "CLUSTER", "GETKEYSINSLOT", str(slot), "1000")
    assert keys
    migrated = ask_node(
        "127.0.0.1", source.port, "MIGRATE", "127.0.0.1", str(target.port), "", "0", "5000", "KEYS", *keys
    )
    assert migrated == b"OK"
    time.sleep(pause)  # the migration's length (publishes meanwhile are redirected with -ASK), not a synchronisation
    for node in (target, source, *(n for n in _masters(cluster) if n not in (source, target))):
        assert ask_node("127.0.0.1", node.port, "CLUSTER", "SETSLOT", str(slot), "NODE", target_id) == b"OK"


async def test_resharding_a_slot_under_load_follows_ask_and_moved(
    cluster: RedisCluster, node: ServerProcess, stub: cachepubsub_pb2_grpc.PubsubStub
) -> None:
    # Arrange
    cache = create_cache(node)
    load = FailoverLoad(stub, cache, TOPICS, INTERVAL)
    moved_topic = TOPICS[0]
    slot = load.runs[moved_topic].slot
    source = cluster.owner_of(slot)
    target = next(n for n in _masters(cluster) if n is not source)
    await load.start()
    await load.wait_for_ack(moved_topic, after=time.monotonic() + 0.5, within=10)

    # Act
    await asyncio.to_thread(_migrate_slot, cluster, slot, source, target, 0.5)
    moved_at = time.monotonic()
    await load.wait_for_ack(moved_topic, after=moved_at + 0.5, within=10)
    await load.stop()
    tallies = {topic: tally(run, retained(cluster, cache, topic)) for topic, run in load.runs.items()}
    failovers = await _metric(node, "tidings_redis_failovers_total")
    stats = ask_node("127.0.0.1", target.port, "INFO", "commandstats").decode()
    asked = int(re.findall(r"cmdstat_asking:calls=(\d+)", stats)[0] if "cmdstat_asking" in stats else 0)

    # Assert
    runs = list(load.runs.values())
    print(f"resharding: {_summary(tallies)}; ASKING sent {asked} times")
    assert asked > 0  # publishes during the migration were redirected with -ASK
    assert all(not run.refused and not run.unsure and not run.other_errors for run in runs), [
        (r.refused, r.unsure, r.other_errors) for r in runs
    ]
    assert all(not run.stream_error and not run.discontinuities for run in runs)
    assert _summary(tallies) == dict.fromkeys(
        ("missing", "duplicated", "unexplained", "lost_by_redis", "silently_lost", "reordered"), 0
    ), tallies
    assert cluster.owner_of(slot) is target
    assert failovers == 0  # a slot moved between masters: no master was replaced


async def _publish_until_accepted(stub: cachepubsub_pb2_grpc.PubsubStub, cache: str, topic: str, value: str) -> None:
    """Publish ``value``, again while the node answers UNAVAILABLE (nothing applied), for up to 15 s."""
    deadline = time.monotonic() + 15
    while True:
        try:
            await publish(stub, cache, topic, value)
            return
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)  # a client's retry pause: the node has no event to offer


async def test_failover_to_a_replica_that_missed_messages_never_reuses_their_numbers(
    tmp_path: Path, cluster: RedisCluster, node: ServerProcess, stub: cachepubsub_pb2_grpc.PubsubStub
) -> None:
    # Arrange: the replica stops reading its master, whose replication stream then fills the sockets between them,
    # so that the next publishes are acknowledged by the master and never reach the replica
    cache = create_cache(node)
    keys = TopicKeys.of(PREFIX, cache, "t")
    master = cluster.owner_of(keys.slot)
    replica = cluster.replica_of(master)
    assert replica.process is not None
    live = await open_subscription(stub, cache, "t", resume_at=1)
    for i in range(1, 4):
        await publish(stub, cache, "t", f"m{i}")
    before = await read_items(live, 3)
    os.kill(replica.process.pid, signal.SIGSTOP)
    try:
        with master.client() as client:
            for i in range(3):
                client.set(keys.last_page + b":filler-%d" % i, b"x" * (8 << 20))
        for i in range(4, 7):
            await publish(stub, cache, "t", f"m{i}")
        lost = await read_items(live, 3)
        master.stop()  # SIGKILL
    finally:
        os.kill(replica.process.pid, signal.SIGCONT)
    await asyncio.to_thread(cluster.wait_for_owner, keys.slot, replica)

    # Act
    for i in range(7, 10):
        await _publish_until_accepted(stub, cache, "t", f"m{i}")
    after = await asyncio.wait_for(read_items(live, 3), 15)  # fails on a discontinuity (heartbeats come meanwhile)
    kept = retained(cluster, cache, "t")
    live.cancel()
    # Its mirror comes from Redis. It is pointed at the promoted replica: the cluster's first node, whose URL
    # `cluster.url` is, may be the master killed above.
    other = ServerProcess(tmp_path / "other", ("--redis-cluster", replica.url)).start()
    try:
        async with grpc.aio.insecure_channel(other.endpoint) as channel:
            resumed = await open_subscription(
                cachepubsub_pb2_grpc.PubsubStub(channel), cache, "t", resume_at=4, page=before[0].sequence_page
            )
            gap = await read_non_heartbeat(resumed)
            rest = await asyncio.wait_for(read_items(resumed, 3), 15)
            resumed.cancel()
    finally:
        other.stop()

    # Assert
    assert [(i.topic_sequence_number, i.value.text) for i in before + lost] == [(n, f"m{n}") for n in range(1, 7)]
    assert [(i.topic_sequence_number, i.value.text) for i in after] == [(n, f"m{n}") for n in range(7, 10)]
    assert {i.sequence_page for i in before + lost + after} == {before[0].sequence_page}
    assert kept == [(n, f"m{n}") for n in (1, 2, 3, 7, 8, 9)]  # Redis lost m4 to m6; no number was used twice
    # Resuming from another process: a discontinuity for exactly what Redis lost, then the rest.
    assert gap.WhichOneof("kind") == "discontinuity", gap
    assert (gap.discontinuity.last_topic_sequence, gap.discontinuity.new_topic_sequence) == (3, 6)
    assert [(i.topic_sequence_number, i.value.text) for i in rest] == [(n, f"m{n}") for n in range(7, 10)]
    assert node.wait_for_log(r"Redis lost messages 4 to 6")
