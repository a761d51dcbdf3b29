"""What every load generator scenario shares: the target, measurement windows, and subscriptions.

A subscription decodes every message, counts items and checks that sequence numbers increase when the
server provides them; a scenario hears about items through a ``DeliveryListener``.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import grpc
from _h2client import H2Channel
from _proc import cpu_seconds, machine_busy_seconds
from momento_wire_types import cachepubsub_pb2, controlclient_pb2

PUBLISH = "/cache_client.pubsub.Pubsub/Publish"
SUBSCRIBE = "/cache_client.pubsub.Pubsub/Subscribe"
CREATE_CACHE = "/control_client.ScsControl/CreateCache"

_EOF: object = grpc.aio.EOF  # type: ignore[attr-defined]  # missing from grpc-stubs


class BenchError(RuntimeError):
    """A scenario could not run to the end (server errors, a stalled stream)."""


@dataclass(frozen=True)
class Target:
    """The server under load: its address, the cache to use, and its pid for /proc readings."""

    address: str
    cache: str
    token: str
    server_pid: int | None

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        # An empty authorization header means anonymous, as official SDKs send to a local server.
        return (("authorization", self.token),)

    def open_channel(self) -> grpc.aio.Channel:
        """Open a channel on its own HTTP/2 connection (channels with equal options would share one)."""
        return grpc.aio.insecure_channel(self.address, options=[("grpc.use_local_subchannel_pool", 1)])


@dataclass
class Snapshot:
    """Counters at one instant of a measured window."""

    wall: float
    client_cpu: float
    server_cpu: float | None
    machine_busy: float
    count: int
    helper_cpus: tuple[float, ...] = ()  # CPU time of the load generator's other processes, if any

    @classmethod
    def take(cls, target: Target, count: int, helper_pids: Sequence[int] = ()) -> Snapshot:
        """Read the counters now; ``helper_pids`` are the load generator's other processes (their CPU counts)."""
        server_cpu = cpu_seconds(target.server_pid) if target.server_pid else None
        helper_cpus = tuple(cpu_seconds(pid) for pid in helper_pids)
        return cls(time.perf_counter(), time.process_time(), server_cpu, machine_busy_seconds(), count, helper_cpus)


def window_report(start: Snapshot, end: Snapshot, unit: str) -> dict[str, Any]:
    """Rates and CPU use between two snapshots; ``unit`` names what ``count`` counts."""
    seconds = end.wall - start.wall
    count = end.count - start.count
    # The load generator's CPU is the sum over its processes (this one and any helpers).
    client_cpus = [end.client_cpu - start.client_cpu]
    client_cpus += [after - before for before, after in zip(start.helper_cpus, end.helper_cpus, strict=True)]
    client_cpu = sum(client_cpus)
    report: dict[str, Any] = {
        "seconds": round(seconds, 3),
        unit: count,
        f"{unit}_per_s": count / seconds,
        "client_cpu_s": client_cpu,
        "client_cores": client_cpu / seconds,
        "server_cpu_s": None,
        "server_cores": None,
        "other_cores": None,
        f"server_cpu_ms_per_1k_{unit}": None,
    }
    if len(client_cpus) > 1:
        report["client_cores_by_process"] = [cpu / seconds for cpu in client_cpus]
    if start.server_cpu is not None and end.server_cpu is not None:
        server_cpu = end.server_cpu - start.server_cpu
        report["server_cpu_s"] = server_cpu
        report["server_cores"] = server_cpu / seconds
        report[f"server_cpu_ms_per_1k_{unit}"] = server_cpu * 1e6 / count if count else None
        # CPU that neither the server nor this client used: other processes competing for the cores.
        other = end.machine_busy - start.machine_busy - client_cpu - server_cpu
        report["other_cores"] = max(0.0, other) / seconds
    return report


async def ensure_cache(target: Target) -> None:
    """Create the cache; one that already exists is fine."""
    async with target.open_channel() as channel:
        create = channel.unary_unary(
            CREATE_CACHE,
            request_serializer=controlclient_pb2._CreateCacheRequest.SerializeToString,
            response_deserializer=controlclient_pb2._CreateCacheResponse.FromString,
        )
        try:
            await create(controlclient_pb2._CreateCacheRequest(cache_name=target.cache), metadata=target.metadata)
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.ALREADY_EXISTS:
                raise BenchError(f"CreateCache failed: {error.code().name} {error.details()}") from error


def encode_publish(cache: str, topic: str, payload: bytes) -> bytes:
    """Return a pre-encoded ``_PublishRequest`` (publishers send bytes through an identity serializer)."""
    value = cachepubsub_pb2._TopicValue(binary=payload)
    return cachepubsub_pb2._PublishRequest(cache_name=cache, topic=topic, value=value).SerializeToString()


def unique_topic(scenario: str) -> str:
    """A topic no earlier run used, so every run starts on a fresh topic instance."""
    return f"bench-{scenario}-{os.getpid()}-{time.time_ns()}"


# --- subscriptions ---------------------------------------------------------------------------------------


class DeliveryListener(Protocol):
    """What a scenario does with the items its subscriptions read."""

    def on_item(self, subscription: Subscription, now_ns: int, item: cachepubsub_pb2._TopicItem) -> None: ...

    def on_skipped(self, subscription: Subscription, first: int, last: int) -> None: ...


class _Ignore:
    """A listener for subscriptions whose items do not matter (idle, warm-up)."""

    def on_item(self, subscription: Subscription, now_ns: int, item: cachepubsub_pb2._TopicItem) -> None:
        pass

    def on_skipped(self, subscription: Subscription, first: int, last: int) -> None:
        pass


class Readiness:
    """Counts subscriptions that have read their first message (the heartbeat) or failed."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.ready = 0
        self.failed = 0
        self.errors: Counter[str] = Counter()
        self.all_settled = asyncio.Event()
        if expected == 0:
            self.all_settled.set()

    def settle(self, *, ok: bool, error: str | None = None) -> None:
        if error:
            self.errors[error] += 1
        if ok:
            self.ready += 1
        else:
            self.failed += 1
        if self.ready + self.failed >= self.expected:
            self.all_settled.set()

    async def wait(self, within_s: float) -> None:
        try:
            await asyncio.wait_for(self.all_settled.wait(), within_s)
        except TimeoutError:
            raise BenchError(
                f"only {self.ready} of {self.expected} subscriptions got their first heartbeat in {within_s} s"
            ) from None
        if self.failed:
            raise BenchError(f"{self.failed} of {self.expected} subscriptions failed to start: {self.errors}")


@dataclass(eq=False)
class Subscription:
    """One Subscribe stream: decodes every message, counts items, checks sequence order.

    A client reads the stream and hands each message to `receive`, then `end` once; `run` is grpc.aio's loop,
    `bench/_h2client.py`'s channels call them from their reads.
    """

    listener: DeliveryListener
    readiness: Readiness
    position: int = 0  # publishes accounted for: items read plus items a gap or discontinuity skipped
    items: int = 0
    heartbeats: int = 0
    discontinuities: int = 0
    gaps: int = 0
    out_of_order: int = 0
    last_sequence: int = 0
    last_page: int = 0
    started: bool = False  # the first message (a heartbeat) was read
    error: str | None = None

    async def run(
        self,
        method: grpc.aio.UnaryStreamMultiCallable[bytes, bytes],
        request: bytes,
        metadata: tuple[tuple[str, str], ...],
        opening: asyncio.Semaphore,
    ) -> None:
        """Read a grpc.aio stream until it ends, fails or the task is cancelled.

        ``opening`` bounds the streams that are still waiting for their first message: grpc servers cancel
        new streams beyond ~1,000 that the application has not picked up yet, so a burst of thousands
        of subscribes would fail although each one alone is fine.
        """
        await opening.acquire()
        holding = True
        call = method(request, metadata=metadata)
        try:
            while True:
                raw = await call.read()
                if raw is _EOF:
                    break
                # One clock for every process: publish stamps come from another.
                self.receive(time.monotonic_ns(), cast(bytes, raw))
                if holding:
                    holding = False
                    opening.release()
        except grpc.aio.AioRpcError as error:
            self.error = f"{error.code().name}: {error.details()}"
        finally:
            call.cancel()
            if holding:
                opening.release()
            self.end()

    def receive(self, now_ns: int, raw: bytes) -> None:
        """Account for one message of the stream, read at ``now_ns`` (``time.monotonic_ns``)."""
        message = cachepubsub_pb2._SubscriptionItem.FromString(raw)
        kind = message.WhichOneof("kind")
        if kind == "item":
            self._on_item(now_ns, message.item)
        elif kind == "heartbeat":
            self.heartbeats += 1
        elif kind == "discontinuity":
            self._on_discontinuity(message.discontinuity)
        if not self.started:
            self.started = True
            self.readiness.settle(ok=kind == "heartbeat")
            if kind != "heartbeat":
                self.error = f"first message was {kind}, not a heartbeat"

    def ended(self, status: int, message: str) -> None:
        """`bench/_h2client.py`'s end of the stream: its grpc-status (-1: the stream or connection broke)."""
        self.end(f"grpc-status {status}: {message}")

    def end(self, error: str | None = None) -> None:
        """The stream ended (``error``: how it failed); one that never started settles its readiness as failed."""
        if error and self.error is None:
            self.error = error
        if not self.started:
            self.started = True
            self.readiness.settle(ok=False, error=self.error or "stream ended before its first message")

    def _on_item(self, now_ns: int, item: cachepubsub_pb2._TopicItem) -> None:
        self.items += 1
        sequence = item.topic_sequence_number
        if sequence:
            if item.sequence_page != self.last_page:
                self.last_page = item.sequence_page
                self.last_sequence = 0
            last = self.last_sequence
            if last and sequence <= last:
                self.out_of_order += 1
            elif last and sequence > last + 1:
                self.gaps += 1
                self._skip(sequence - last - 1)
            self.last_sequence = sequence
        self.position += 1
        self.listener.on_item(self, now_ns, item)

    def _on_discontinuity(self, discontinuity: cachepubsub_pb2._Discontinuity) -> None:
        self.discontinuities += 1
        last = self.last_sequence or discontinuity.last_topic_sequence
        if last and discontinuity.new_topic_sequence > last:
            self._skip(discontinuity.new_topic_sequence - last)
        self.last_sequence = discontinuity.new_topic_sequence
        self.last_page = discontinuity.new_sequence_page

    def _skip(self, missed: int) -> None:
        first = self.position + 1
        self.position += missed
        self.listener.on_skipped(self, first, self.position)


@dataclass
class SubscriberPool:
    """Many subscriptions to one topic spread over several connections, read by grpc.aio or, with
    ``client="h2"``, by `bench/_h2client.py`."""

    target: Target
    topic: str
    listener: DeliveryListener
    count: int
    channels: int
    client: str = "grpcio"
    opening_limit: int = 200
    subscriptions: list[Subscription] = field(default_factory=list)
    _open_channels: list[grpc.aio.Channel] = field(default_factory=list)
    _h2_channels: list[H2Channel] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self, ready_within_s: float) -> None:
        """Open every subscription and wait until each has read its first heartbeat."""
        request = cachepubsub_pb2._SubscriptionRequest(
            cache_name=self.target.cache, topic=self.topic
        ).SerializeToString()
        readiness = Readiness(self.count)
        self.subscriptions = [Subscription(self.listener, readiness) for _ in range(self.count)]
        if self.client == "h2":
            await self._start_h2(request)
        else:
            self._open_channels = [self.target.open_channel() for _ in range(max(1, self.channels))]
            methods = [
                channel.unary_stream(SUBSCRIBE, request_serializer=None, response_deserializer=None)
                for channel in self._open_channels
            ]
            opening = asyncio.Semaphore(self.opening_limit)
            for index, subscription in enumerate(self.subscriptions):
                method = methods[index % len(methods)]
                self._tasks.append(
                    asyncio.create_task(subscription.run(method, request, self.target.metadata, opening))
                )
        await readiness.wait(ready_within_s)

    async def _start_h2(self, request: bytes) -> None:
        self._h2_channels = list(
            await asyncio.gather(*(H2Channel.connect(self.target.address) for _ in range(max(1, self.channels))))
        )
        for index, subscription in enumerate(self.subscriptions):
            channel = self._h2_channels[index % len(self._h2_channels)]
            channel.start_call(SUBSCRIBE, request, self.target.metadata, subscription.receive, subscription.ended)

    async def close(self) -> None:
        """Cancel every stream, wait for its task, and close the connections."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(channel.close(grace=None) for channel in self._open_channels))
        for h2_channel in self._h2_channels:
            h2_channel.close()
        await asyncio.gather(*(h2_channel.closed for h2_channel in self._h2_channels))

    def anomalies(self) -> dict[str, Any]:
        """Sums of what a clean run does not have: gaps, reorders, discontinuities, stream errors."""
        errors = Counter(s.error for s in self.subscriptions if s.error)
        return {
            "gaps": sum(s.gaps for s in self.subscriptions),
            "out_of_order": sum(s.out_of_order for s in self.subscriptions),
            "discontinuities": sum(s.discontinuities for s in self.subscriptions),
            "stream_errors": dict(errors),
        }


ignore_items: DeliveryListener = _Ignore()
