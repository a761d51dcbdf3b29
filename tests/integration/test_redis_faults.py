"""Redis faults with real processes: data lost, Redis unreachable, the pub/sub connection killed, a node killed.

Each test has its own redis-server, since it stops, freezes or restarts it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import grpc.aio
import httpx
import pytest
from momento_wire_types import cachepubsub_pb2 as pb
from momento_wire_types import cachepubsub_pb2_grpc

from tests._redis import RedisServer
from tests.integration._server import ServerProcess
from tests.integration._wire import open_subscription, publish, read_items, read_non_heartbeat

from .conftest import create_cache
from .test_redis_nodes import start_node

_RECONNECTED = r"Redis pub/sub reconnected"


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis").start()
    yield server
    if server.process is not None and server.process.poll() is None:
        os.kill(server.process.pid, signal.SIGCONT)  # in case a test left it frozen
    server.stop()


@pytest.fixture
def node(tmp_path: Path, redis: RedisServer) -> Iterator[ServerProcess]:
    process = start_node(tmp_path / "node", redis)
    yield process
    process.stop()


@pytest.fixture
async def stub(node: ServerProcess) -> AsyncIterator[cachepubsub_pb2_grpc.PubsubStub]:
    async with grpc.aio.insecure_channel(node.endpoint) as channel:
        yield cachepubsub_pb2_grpc.PubsubStub(channel)


async def test_redis_restarted_without_data_moves_subscribers_to_a_greater_page(
    redis: RedisServer, node: ServerProcess, stub: cachepubsub_pb2_grpc.PubsubStub
) -> None:
    # Arrange
    cache = create_cache(node)
    live = await open_subscription(stub, cache, "t", resume_at=1)
    for value in ("a", "b"):
        await publish(stub, cache, "t", value)
    before = await read_items(live, 2)
    old_page = before[0].sequence_page

    # Act: every key is gone
    redis.stop()
    redis.start()
    node.wait_for_log(_RECONNECTED)
    started = time.monotonic()
    await publish(stub, cache, "t", "after")
    recovered_in = time.monotonic() - started
    jump = await read_non_heartbeat(live)
    after = await read_items(live, 1)
    resumed = await open_subscription(stub, cache, "t", resume_at=3, page=old_page)
    resumed_first = await read_non_heartbeat(resumed)
    live.cancel()
    resumed.cancel()

    # Assert
    assert recovered_in < 2.0
    assert jump.WhichOneof("kind") == "discontinuity", jump
    new_page = jump.discontinuity.new_sequence_page
    assert new_page > old_page
    assert jump.discontinuity.last_topic_sequence == 2
    assert (after[0].value.text, after[0].topic_sequence_number, after[0].sequence_page) == ("after", 1, new_page)
    assert resumed_first.WhichOneof("kind") == "discontinuity", resumed_first
    assert resumed_first.discontinuity.new_sequence_page == new_page


async def test_redis_unreachable_fails_fast_keeps_streams_and_recovers(
    redis: RedisServer, node: ServerProcess, stub: cachepubsub_pb2_grpc.PubsubStub
) -> None:
    # Arrange
    cache = create_cache(node)
    live = await open_subscription(stub, cache, "t", resume_at=1)
    await publish(stub, cache, "t", "before")
    assert [i.value.text for i in await read_items(live, 1)] == ["before"]
    assert redis.process is not None
    ready_url = f"{node.http_url}/ready"

    # Act: Redis freezes (connections hang, data kept)
    os.kill(redis.process.pid, signal.SIGSTOP)
    node.wait_for_log(r"did not answer a PING")
    started = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as publishing:
        await stub.Publish(
            pb._PublishRequest(cache_name=cache, topic="t", value=pb._TopicValue(text="unsure")), timeout=5
        )
    failed_in = time.monotonic() - started
    with pytest.raises(grpc.aio.AioRpcError) as subscribing:
        await open_subscription(stub, cache, "other")
    async with httpx.AsyncClient() as http:
        not_ready = (await http.get(ready_url)).status_code
    os.kill(redis.process.pid, signal.SIGCONT)
    node.wait_for_log(_RECONNECTED)
    await _publish_once_reachable(stub, cache, "after")
    after = await read_items(live, 1)  # fails on a discontinuity
    if after[0].value.text == "unsure":
        # Its command was on the wire when the node gave up: Redis ran it once it was thawed. The client was
        # told DEADLINE_EXCEEDED (it may have been applied); it is delivered, and numbered, like others.
        after += await read_items(live, 1)
    async with httpx.AsyncClient() as http:
        ready = (await http.get(ready_url)).status_code
    live.cancel()

    # Assert
    # Sent to Redis and unanswered (DEADLINE_EXCEEDED: it may be applied once Redis thaws), or refused unsent
    # because the node's shared link to Redis was already known lost (UNAVAILABLE: never applied).
    assert publishing.value.code() in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE)
    if publishing.value.code() == grpc.StatusCode.UNAVAILABLE:
        assert "unsure" not in [i.value.text for i in after]
    assert subscribing.value.code() == grpc.StatusCode.UNAVAILABLE
    assert (not_ready, ready) == (503, 200)
    assert failed_in < 4.0
    assert after[-1].value.text == "after"
    assert [i.topic_sequence_number for i in after] == list(range(2, 2 + len(after)))


async def _publish_once_reachable(stub: cachepubsub_pb2_grpc.PubsubStub, cache: str, text: str) -> None:
    """Publish as an SDK would right after an outage: retry UNAVAILABLE (refused unsent: the node's link to Redis
    may still wait out its half-second between connect attempts), for at most 5 s."""
    deadline = time.monotonic() + 5.0
    while True:
        try:
            await publish(stub, cache, "t", text)
            return
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)  # a retry policy's backoff, not a synchronisation


async def test_publishes_during_a_redis_freeze_answer_unavailable_only_when_not_applied(
    redis: RedisServer, node: ServerProcess, stub: cachepubsub_pb2_grpc.PubsubStub
) -> None:
    # Arrange: publishers keep several publishes in flight, so that some are on the wire when Redis freezes
    cache = create_cache(node)
    outcomes: dict[str, list[str]] = {"OK": [], "UNAVAILABLE": [], "DEADLINE_EXCEEDED": []}
    published = asyncio.Event()  # set at every successful publish
    publishing = True

    async def publisher(name: str) -> None:
        number = 0
        while publishing:
            number += 1
            value = f"{name}-{number}"
            try:
                await stub.Publish(pb._PublishRequest(cache_name=cache, topic="t", value=pb._TopicValue(text=value)))
                outcomes["OK"].append(value)
                published.set()
            except grpc.aio.AioRpcError as error:
                outcomes.setdefault(error.code().name, []).append(value)
                await asyncio.sleep(0.05)  # the node answers at once while Redis is away: do not spin

    async def successes(count: int) -> None:
        while len(outcomes["OK"]) < count:
            published.clear()
            await published.wait()

    publishers = [asyncio.create_task(publisher(f"p{i}")) for i in range(4)]
    assert redis.process is not None
    await asyncio.wait_for(successes(20), 10)

    # Act: a freeze longer than the node's 2 s command timeout, then Redis runs what it had received
    os.kill(redis.process.pid, signal.SIGSTOP)
    await asyncio.to_thread(node.wait_for_log, r"Redis connection lost")
    # The freeze goes on (its length, not a synchronisation): new publishes meet a Redis that accepts connections
    # and never answers, so reconnecting times out after 2 s and they are not sent.
    await asyncio.sleep(3.0)
    os.kill(redis.process.pid, signal.SIGCONT)
    # 20 more successes show the node reaches Redis again; the publishers stop then, before the topic's retention
    # (1,000 messages) could trim any of them from the stream read below.
    await asyncio.wait_for(successes(len(outcomes["OK"]) + 20), 10)
    publishing = False
    await asyncio.gather(*publishers)
    with redis.client() as client:
        applied = {
            fields[b"v"].decode() for _, fields in client.xrange(b"tidings:{%d:%s:t}:s" % (len(cache), cache.encode()))
        }

    # Assert
    unavailable, unknown = set(outcomes["UNAVAILABLE"]), set(outcomes["DEADLINE_EXCEEDED"])
    print(
        f"freeze: {len(outcomes['OK'])} OK, {len(unavailable)} UNAVAILABLE (none applied),",
        f"{len(unknown)} DEADLINE_EXCEEDED ({len(unknown & applied)} applied)",
    )
    assert unknown, outcomes  # publishes were in flight when Redis froze
    assert unavailable, outcomes  # and others could not be sent
    assert not unavailable & applied, sorted(unavailable & applied)  # UNAVAILABLE: nothing happened
    assert set(outcomes["OK"]) <= applied
    assert set(outcomes) == {"OK", "UNAVAILABLE", "DEADLINE_EXCEEDED"}, outcomes.keys()


async def test_killed_pubsub_connection_is_repaired_and_backfilled(
    tmp_path: Path, redis: RedisServer, node: ServerProcess, stub: cachepubsub_pb2_grpc.PubsubStub
) -> None:
    # Arrange: subscriber on this node, publisher on another node (its connections are not pub/sub ones)
    other = start_node(tmp_path / "other", redis)
    cache = create_cache(node)
    try:
        async with grpc.aio.insecure_channel(other.endpoint) as channel:
            publisher = cachepubsub_pb2_grpc.PubsubStub(channel)
            live = await open_subscription(stub, cache, "t", resume_at=1)
            await publish(publisher, cache, "t", "m1")
            assert [i.value.text for i in await read_items(live, 1)] == ["m1"]

            # Act: the pub/sub connections are killed; publishes go on meanwhile
            with redis.client() as client:
                killed = client.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
            for i in range(2, 7):
                await publish(publisher, cache, "t", f"m{i}")
            rest = await read_items(live, 5)  # read_items fails on a discontinuity
            live.cancel()
    finally:
        other.stop()

    # Assert
    assert killed >= 1
    assert [i.value.text for i in rest] == [f"m{i}" for i in range(2, 7)]
    assert [i.topic_sequence_number for i in rest] == [2, 3, 4, 5, 6]
    assert len(node.wait_for_log(_RECONNECTED)) == 1


async def test_subscribers_of_a_killed_node_resume_on_another_without_loss_or_repeat(
    tmp_path: Path, redis: RedisServer, node: ServerProcess
) -> None:
    # Arrange
    doomed = start_node(tmp_path / "doomed", redis)
    cache = create_cache(node)
    async with grpc.aio.insecure_channel(node.endpoint) as a, grpc.aio.insecure_channel(doomed.endpoint) as b:
        stub_a, stub_b = cachepubsub_pb2_grpc.PubsubStub(a), cachepubsub_pb2_grpc.PubsubStub(b)
        call = await open_subscription(stub_b, cache, "t", resume_at=1)
        for i in range(1, 4):
            await publish(stub_a, cache, "t", f"m{i}")
        first = await read_items(call, 3)

        # Act
        doomed.kill()
        for i in range(4, 7):
            await publish(stub_a, cache, "t", f"m{i}")
        last = first[-1]
        resumed = await open_subscription(stub_a, cache, "t", last.topic_sequence_number + 1, last.sequence_page)
        rest = await read_items(resumed, 3)
        resumed.cancel()
        with pytest.raises(grpc.aio.AioRpcError):
            await asyncio.wait_for(call.read(), 10)

    # Assert
    assert [i.value.text for i in first + rest] == [f"m{i}" for i in range(1, 7)]
    assert [i.topic_sequence_number for i in first + rest] == list(range(1, 7))
