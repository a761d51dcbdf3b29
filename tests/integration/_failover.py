"""Load through a Redis Cluster failover: publishers and subscribers on topics across the shards, and the count
of what subscribers lost, repeated or reordered against what the cluster retained (the new master's streams).

Used by ``test_redis_failover.py`` (short runs) and meant for a longer soak run as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc.aio
from momento_wire_types import cachepubsub_pb2 as pb
from momento_wire_types import cachepubsub_pb2_grpc

from tests._redis import RedisCluster, ask_node
from tests.integration._wire import open_subscription
from tidings.server.engine._redis_scripts import TopicKeys, entry_sequence_number

PREFIX = "tidings:"


@dataclass
class TopicRun:
    """One topic's publishes (by outcome) and what its one subscriber received, in order."""

    topic: str
    slot: int
    acked: list[str] = field(default_factory=list)  # values whose publish succeeded
    acked_at: list[float] = field(default_factory=list)  # when each succeeded (monotonic)
    refused: list[str] = field(default_factory=list)  # UNAVAILABLE: not applied
    unsure: list[str] = field(default_factory=list)  # DEADLINE_EXCEEDED: maybe applied
    other_errors: Counter[str] = field(default_factory=Counter)
    received: list[tuple[int, int, str]] = field(default_factory=list)  # (page, seq, value)
    discontinuities: list[tuple[int, int, int]] = field(default_factory=list)  # (last, new seq, new page)
    stream_error: str = ""
    progress: asyncio.Event = field(default_factory=asyncio.Event)  # set at every ack and every item received

    async def wait_until(self, done: Callable[[], bool]) -> None:
        """Return once ``done()`` holds, checking after each ack or item (bound it with ``asyncio.timeout``)."""
        while not done():
            self.progress.clear()
            await self.progress.wait()


@dataclass
class Tally:
    """A topic's subscriber against the truth (the stream the cluster kept): each count should be 0, except
    ``lost_by_redis`` (acknowledged, gone from the stream: Redis lost them; only a SIGKILL may)."""

    missing: list[str]  # in the stream, published while subscribed, never received
    duplicated: list[str]  # received more than once
    reordered: int  # received out of the stream's order
    unexplained: list[str]  # received, yet neither in the stream nor answered as maybe-applied/lost
    lost_by_redis: list[str]  # acknowledged to the publisher, not in the stream
    silently_lost: list[str]  # acknowledged, never received, and the subscriber was told of no discontinuity


class FailoverLoad:
    """Publishers (one per topic, ``interval`` apart) and one subscriber per topic on one tidings node."""

    def __init__(self, stub: cachepubsub_pb2_grpc.PubsubStub, cache: str, topics: list[str], interval: float) -> None:
        self._stub = stub
        self._cache = cache
        self._interval = interval
        self.runs = {topic: TopicRun(topic, TopicKeys.of(PREFIX, cache, topic).slot) for topic in topics}
        self._publishing = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._calls: list[Any] = []

    async def start(self) -> None:
        """Subscribe every topic (from its first message), then start publishing."""
        for run in self.runs.values():
            call = await open_subscription(self._stub, self._cache, run.topic, resume_at=1)
            self._calls.append(call)
            self._tasks.append(asyncio.create_task(self._subscribe(call, run)))
        self._publishing.set()
        for run in self.runs.values():
            self._tasks.append(asyncio.create_task(self._publish(run)))

    async def wait_for_ack(self, topic: str, after: float, within: float) -> float:
        """The monotonic time of ``topic``'s first successful publish after ``after`` (waiting up to ``within``)."""
        run = self.runs[topic]
        async with asyncio.timeout(within):
            await run.wait_until(lambda: bool(run.acked_at) and run.acked_at[-1] > after)
        return next(at for at in run.acked_at if at > after)

    async def stop(self, settle: float = 3.0) -> None:
        """Stop publishing, give subscribers up to ``settle`` seconds to receive what they were acknowledged,
        then end them."""
        self._publishing.clear()
        publishers = self._tasks[len(self.runs) :]
        await asyncio.gather(*publishers)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(settle):
                for run in self.runs.values():
                    await run.wait_until(functools.partial(_caught_up, run))
        for call in self._calls:
            call.cancel()
        await asyncio.gather(*self._tasks[: len(self.runs)], return_exceptions=True)

    async def _publish(self, run: TopicRun) -> None:
        number = 0
        while self._publishing.is_set():
            number += 1
            value = f"{run.topic}:{number}"
            request = pb._PublishRequest(cache_name=self._cache, topic=run.topic, value=pb._TopicValue(text=value))
            try:
                await self._stub.Publish(request, timeout=10)
            except grpc.aio.AioRpcError as error:
                if error.code() == grpc.StatusCode.UNAVAILABLE:
                    run.refused.append(value)
                elif error.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                    run.unsure.append(value)
                else:
                    run.other_errors[f"{error.code().name}: {error.details()}"] += 1
            else:
                run.acked.append(value)
                run.acked_at.append(time.monotonic())
                run.progress.set()
            await asyncio.sleep(self._interval)

    async def _subscribe(self, call: Any, run: TopicRun) -> None:
        try:
            while (message := await call.read()) is not grpc.aio.EOF:  # type: ignore[attr-defined]  # missing from grpc-stubs
                kind = message.WhichOneof("kind")
                if kind == "item":
                    item = message.item
                    run.received.append((item.sequence_page, item.topic_sequence_number, item.value.text))
                    run.progress.set()
                elif kind == "discontinuity":
                    gap = message.discontinuity
                    run.discontinuities.append((gap.last_topic_sequence, gap.new_topic_sequence, gap.new_sequence_page))
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.CANCELLED:
                run.stream_error = f"{error.code().name}: {error.details()}"
        except asyncio.CancelledError:
            pass


def _caught_up(run: TopicRun) -> bool:
    received = {value for _, _, value in run.received}
    return all(value in received for value in run.acked)


def retained(cluster: RedisCluster, cache: str, topic: str) -> list[tuple[int, str]]:
    """(seq, value) of every entry the topic's stream holds now, read from the master serving it."""
    keys = TopicKeys.of(PREFIX, cache, topic)
    owner = cluster.owner_of(keys.slot)
    entries = ask_node("127.0.0.1", owner.port, "XRANGE", keys.stream, "-", "+")
    return [(entry_sequence_number(entry_id), fields[1].decode()) for entry_id, fields in entries]


def tally(run: TopicRun, truth: list[tuple[int, str]]) -> Tally:
    """Compare ``run``'s subscriber with ``truth`` (the stream after the failover)."""
    kept = [value for _, value in truth]
    kept_set = set(kept)
    received = [value for _, _, value in run.received]
    counts = Counter(received)
    order = {value: index for index, value in enumerate(kept)}
    positions = [order[value] for value in received if value in order]
    reordered = sum(1 for before, after in itertools.pairwise(positions) if after < before)
    acked = set(run.acked)
    maybe = set(run.unsure)
    return Tally(
        missing=[value for value in kept if value not in counts],
        duplicated=sorted(value for value, count in counts.items() if count > 1),
        reordered=reordered,
        unexplained=[value for value in received if value not in kept_set and value not in acked | maybe],
        lost_by_redis=[value for value in run.acked if value not in kept_set],
        silently_lost=[value for value in run.acked if value not in counts] if not run.discontinuities else [],
    )
