"""Redis Cluster failover rounds at full size, for ``bench/reliability.py``.

One 3 masters + 3 replicas cluster and one tidings node (``--redis-cluster``) for all rounds. Each round takes a
fresh cache, subscribes to every topic (spread over the shards) from its first message, publishes on all of them
(``tests/integration/_failover.py``'s `FailoverLoad`), then fails one shard's master over: SIGKILL (the killed node
is started again afterwards and rejoins as a replica of the new master) or ``CLUSTER FAILOVER`` sent to its
replica. Rounds turn over the shards, so that a later round fails a shard back to a node that was its master.
What subscribers received is counted against what the cluster kept (the new master's stream), as the tests do.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import grpc
import grpc.aio
import httpx
import redis
from momento_wire_types import cachepubsub_pb2_grpc, controlclient_pb2, controlclient_pb2_grpc

from tests._redis import RedisCluster, RedisServer, ask_node
from tests.integration._failover import FailoverLoad, TopicRun, retained, tally
from tests.integration._server import ServerProcess


@dataclass
class Round:
    """What one failover cost."""

    number: int
    kind: str  # "SIGKILL" or "CLUSTER FAILOVER"
    shard: int  # 0, 1, 2: by slot range
    promoted_s: float  # from the kill (or the CLUSTER FAILOVER command) to every node naming the new master
    working_s: float  # from the promotion to the victim topic's first acknowledged publish
    ready_s: float  # from the promotion to /ready answering 200 (-1: not within 10 s)
    rate_per_topic: float  # publishes attempted per second per topic over the round
    shard_refused: int  # UNAVAILABLE on the failed shard's topics
    shard_unsure: int  # DEADLINE_EXCEEDED on the failed shard's topics
    other_refused: int  # UNAVAILABLE on the other shards' topics
    other_errors: int
    acked: int
    lost_by_redis: int  # acknowledged, not in the new master's stream
    missing: int  # in the stream, never received
    duplicated: int
    reordered: int
    unexplained: int
    silently_lost: int
    discontinuities: int
    stream_errors: int
    continued: int  # subscribers that received messages acknowledged after the promotion, on their first stream
    subscribers: int


async def _ready_after(http_url: str, since: float, within: float = 10.0) -> float:
    """Seconds from ``since`` until ``/ready`` answers 200 (asked every 50 ms: no event tells it), or -1."""
    deadline = time.monotonic() + within
    async with httpx.AsyncClient() as http:
        while time.monotonic() < deadline:
            try:
                if (await http.get(f"{http_url}/ready", timeout=2)).status_code == 200:
                    return time.monotonic() - since
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.05)
    return -1.0


def _shards(cluster: RedisCluster) -> list[tuple[int, int]]:
    """The slot ranges of the masters, in slot order (a shard keeps its number whoever is its master)."""
    ranges = ask_node("127.0.0.1", cluster.running()[0].port, "CLUSTER", "SLOTS")
    return sorted((int(first), int(last)) for first, last, *_ in ranges)


def _shard_of(shards: list[tuple[int, int]], slot: int) -> int:
    return next(index for index, (first, last) in enumerate(shards) if first <= slot <= last)


def _rejoin(cluster: RedisCluster, node: RedisServer, within: float = 60.0) -> None:
    """Start a killed node again (it has no data: no persistence) and wait until it is a synced replica and every
    node reports the cluster ok. Redis announces neither: ask every 100 ms."""
    node.start()
    deadline = time.monotonic() + within
    while True:
        try:
            with node.client() as client:
                replication = client.info("replication")
            synced = replication["role"] == "slave" and replication.get("master_link_status") == "up"
            if synced and all(b"cluster_state:ok" in _cluster_info(n) for n in cluster.running()):
                return
        except (OSError, redis.RedisError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"127.0.0.1:{node.port} did not rejoin as a synced replica")
        time.sleep(0.1)


def _cluster_info(node: RedisServer) -> bytes:
    return bytes(ask_node("127.0.0.1", node.port, "CLUSTER", "INFO"))


def _create_cache(endpoint: str, name: str) -> None:
    with grpc.insecure_channel(endpoint) as channel:
        request = controlclient_pb2._CreateCacheRequest(cache_name=name)
        controlclient_pb2_grpc.ScsControlStub(channel).CreateCache(request, timeout=30)


def _received_after(run: TopicRun, since: float) -> bool:
    """Whether ``run``'s subscriber received a message whose publish was acknowledged after ``since``."""
    received = {value for _, _, value in run.received}
    return any(at > since and value in received for value, at in zip(run.acked, run.acked_at, strict=True))


async def _one_round(
    number: int,
    kind: str,
    cluster: RedisCluster,
    node: ServerProcess,
    stub: cachepubsub_pb2_grpc.PubsubStub,
    topics: list[str],
    args: argparse.Namespace,
) -> Round:
    cache = f"round-{number}"
    await asyncio.to_thread(_create_cache, node.endpoint, cache)
    load = FailoverLoad(stub, cache, topics, args.interval)
    shards = _shards(cluster)
    shard = (number - 1) % len(shards)
    on_shard = {t for t, run in load.runs.items() if _shard_of(shards, run.slot) == shard}
    if not on_shard:
        raise LookupError(f"no topic of {topics} is on shard {shard}: use more topics")
    victim_topic = min(on_shard, key=topics.index)
    slot = load.runs[victim_topic].slot
    master = cluster.owner_of(slot)
    replica = cluster.replica_of(master)
    await load.start()
    publishing_since = time.monotonic()
    await load.wait_for_ack(victim_topic, after=time.monotonic() + args.warmup, within=args.warmup + 30)

    failed_at = time.monotonic()
    if kind == "SIGKILL":
        master.stop()  # SIGKILL
    else:
        answer = ask_node("127.0.0.1", replica.port, "CLUSTER", "FAILOVER")
        if answer != b"OK":
            raise RuntimeError(f"CLUSTER FAILOVER answered {answer!r}")
    promoted_at = await asyncio.to_thread(cluster.wait_for_owner, slot, replica)
    working_at = await load.wait_for_ack(victim_topic, after=promoted_at, within=30)
    ready_s = await _ready_after(node.http_url, promoted_at)
    await load.wait_for_ack(victim_topic, after=time.monotonic() + args.after, within=args.after + 30)
    publishing_for = time.monotonic() - publishing_since
    await load.stop()
    runs = list(load.runs.values())
    tallies = [tally(run, retained(cluster, cache, run.topic)) for run in runs]
    if kind == "SIGKILL":
        await asyncio.to_thread(_rejoin, cluster, master)

    shard_runs = [run for run in runs if run.topic in on_shard]
    attempts = sum(len(r.acked) + len(r.refused) + len(r.unsure) + sum(r.other_errors.values()) for r in runs)
    return Round(
        number=number,
        kind=kind,
        shard=shard,
        promoted_s=round(promoted_at - failed_at, 2),
        working_s=round(working_at - promoted_at, 2),
        ready_s=round(ready_s, 2),
        rate_per_topic=round(attempts / len(runs) / publishing_for, 1),
        shard_refused=sum(len(r.refused) for r in shard_runs),
        shard_unsure=sum(len(r.unsure) for r in shard_runs),
        other_refused=sum(len(r.refused) for r in runs if r.topic not in on_shard),
        other_errors=sum(sum(r.other_errors.values()) for r in runs),
        acked=sum(len(r.acked) for r in runs),
        lost_by_redis=sum(len(t.lost_by_redis) for t in tallies),
        missing=sum(len(t.missing) for t in tallies),
        duplicated=sum(len(t.duplicated) for t in tallies),
        reordered=sum(t.reordered for t in tallies),
        unexplained=sum(len(t.unexplained) for t in tallies),
        silently_lost=sum(len(t.silently_lost) for t in tallies),
        discontinuities=sum(len(r.discontinuities) for r in runs),
        stream_errors=sum(1 for r in runs if r.stream_error),
        continued=sum(1 for r in runs if not r.stream_error and _received_after(r, promoted_at)),
        subscribers=len(runs),
    )


def _topics(count: int) -> list[str]:
    return [f"topic-{index}" for index in range(count)]


async def _metric(http_url: str, name: str) -> float:
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"{http_url}/metrics", timeout=10)).text
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else -1.0


async def failover_rounds(args: argparse.Namespace, directory: Path) -> dict[str, object]:
    """Run the SIGKILL rounds, then the ``CLUSTER FAILOVER`` rounds; the rounds and the node's counters.

    A round that does not complete (a timeout: the node did not follow) ends the shape; it is reported in
    ``error``."""
    kills, graceful = args.kill_rounds, args.graceful_rounds
    cluster = RedisCluster(directory / "cluster", replicas=1, node_timeout_ms=args.node_timeout_ms)
    cluster.start()
    rounds: list[Round] = []
    error = ""
    try:
        node = ServerProcess(
            directory / "node",
            (
                "--redis-cluster", cluster.url, "--heartbeat-interval", "1",
                # Every message of a round stays in its stream: the count against the stream sees them all.
                "--retention-messages", "100000",
            ),
        ).start()  # fmt: skip
        try:
            async with grpc.aio.insecure_channel(node.endpoint) as channel:
                stub = cachepubsub_pb2_grpc.PubsubStub(channel)
                topics = _topics(args.topics)
                plan = ["SIGKILL"] * kills + ["CLUSTER FAILOVER"] * graceful
                for number, kind in enumerate(plan, start=1):
                    try:
                        rounds.append(await _one_round(number, kind, cluster, node, stub, topics, args))
                    except (TimeoutError, LookupError, RuntimeError, grpc.RpcError, redis.RedisError) as failure:
                        error = f"round {number} ({kind}) did not complete: {failure!r}"
                        break
                    print(f"failover round {number}: {asdict(rounds[-1])}", flush=True)
            failovers = await _metric(node.http_url, "tidings_redis_failovers_total")
            refreshes = await _metric(node.http_url, "tidings_redis_slot_map_refreshes_total")
        finally:
            node.stop()
    finally:
        cluster.stop()
    return {
        "rounds": [asdict(r) for r in rounds],
        "planned": kills + graceful,
        "failovers_counted": failovers,
        "slot_map_refreshes": refreshes,
        "error": error,
    }


def failover_failures(report: dict[str, object], recovery_bound: float) -> list[str]:
    """The bounds a failover must keep, broken: publishes working again within ``recovery_bound`` seconds of
    the promotion; subscribers on their first stream, missing, repeating or reordering nothing the cluster kept,
    and told of any loss; nothing acknowledged lost by a graceful failover."""
    failures: list[str] = []
    if report["error"]:
        failures.append(str(report["error"]))
    rounds = report["rounds"]
    assert isinstance(rounds, list)
    for r in rounds:
        name = f"failover round {r['number']} ({r['kind']})"
        if r["working_s"] >= recovery_bound:
            failures.append(f"{name}: publishes worked again {r['working_s']} s after the promotion")
        for count in ("missing", "duplicated", "reordered", "unexplained", "silently_lost", "stream_errors"):
            if r[count]:
                failures.append(f"{name}: {count} {r[count]}")
        if r["other_errors"]:
            failures.append(f"{name}: {r['other_errors']} publishes failed with another status")
        if r["continued"] != r["subscribers"]:
            failures.append(f"{name}: {r['subscribers'] - r['continued']} subscribers did not continue")
        if r["kind"] != "SIGKILL" and (r["lost_by_redis"] or r["discontinuities"]):
            failures.append(f"{name}: {r['lost_by_redis']} acknowledged lost, {r['discontinuities']} discontinuities")
    if len(rounds) == report["planned"] and report["failovers_counted"] != len(rounds):
        failures.append(f"tidings_redis_failovers_total is {report['failovers_counted']}, not {len(rounds)}")
    return failures
