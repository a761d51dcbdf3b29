"""Load generators for any server of Momento's Topics gRPC protocol (async grpc.aio clients on uvloop).

Usage::

    python bench/loadgen.py SCENARIO --address HOST:PORT --cache NAME [--server-pid PID] [options]

Prints one JSON object with the scenario's measurements on stdout. With ``--server-pid`` it also reads the
server's CPU time and RSS from /proc around the measured window; its own CPU time is always reported, so a
run can show whether the client, rather than the server, was the bottleneck.

Scenarios:

- ``publish``: ``--concurrency`` publish calls kept in flight over ``--channels`` connections -> publishes/s.
- ``fanout``: one publisher, ``--subscribers`` K on one topic -> deliveries/s. The publisher is paced by
  delivery credit: it may run at most ``--window`` messages ahead of the slowest subscriber (a message
  counts as delivered when every subscriber has read it). The server always has work queued, so this
  measures its maximum sustained fan-out rather than a round trip (as a window of 1 would), and no
  subscriber falls so far behind that a retention buffer has to drop messages (as an unpaced open loop
  would, which makes a server that drops look faster than one that queues).
- ``latency``: K subscribers, publishes at a fixed ``--rate`` (open loop); each payload carries its index
  and a ``time.perf_counter_ns()`` stamp -> p50/p99 publish-to-deliver over all deliveries. A server that
  does not echo payloads (the ceiling) is timed by delivery order instead: the n-th item a subscriber reads
  belongs to the n-th publish.
- ``idle``: ``--subscribers`` idle subscriptions spread over ``--channels`` connections (one HTTP/2
  connection carries ~100 concurrent streams by default) -> server RSS growth per subscription once every
  stream has had its first heartbeat.

Subscribers decode every message, count items and check that sequence numbers increase when the server
provides them (gaps, reorders and discontinuities are reported; a clean run has none).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import struct
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc
import uvloop
from momento_wire_types import cachepubsub_pb2, controlclient_pb2

from _proc import cpu_seconds, rss_kib

PUBLISH = "/cache_client.pubsub.Pubsub/Publish"
SUBSCRIBE = "/cache_client.pubsub.Pubsub/Subscribe"
CREATE_CACHE = "/control_client.ScsControl/CreateCache"

# Latency payloads: magic, publish index, perf_counter_ns() at publish; padded to the payload size.
_STAMP = struct.Struct("<4sIq")
_STAMP_MAGIC = b"TBN1"


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
    count: int

    @classmethod
    def take(cls, target: Target, count: int) -> Snapshot:
        server_cpu = cpu_seconds(target.server_pid) if target.server_pid else None
        return cls(time.perf_counter(), time.process_time(), server_cpu, count)


def window_report(start: Snapshot, end: Snapshot, unit: str) -> dict[str, Any]:
    """Rates and CPU use between two snapshots; ``unit`` names what ``count`` counts."""
    seconds = end.wall - start.wall
    count = end.count - start.count
    client_cpu = end.client_cpu - start.client_cpu
    report: dict[str, Any] = {
        "seconds": round(seconds, 3),
        unit: count,
        f"{unit}_per_s": count / seconds,
        "client_cpu_s": client_cpu,
        "client_cores": client_cpu / seconds,
        "server_cpu_s": None,
        "server_cores": None,
        f"server_cpu_ms_per_1k_{unit}": None,
    }
    if start.server_cpu is not None and end.server_cpu is not None:
        server_cpu = end.server_cpu - start.server_cpu
        report["server_cpu_s"] = server_cpu
        report["server_cores"] = server_cpu / seconds
        report[f"server_cpu_ms_per_1k_{unit}"] = server_cpu * 1e6 / count if count else None
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
        self.all_settled = asyncio.Event()
        if expected == 0:
            self.all_settled.set()

    def settle(self, *, ok: bool) -> None:
        if ok:
            self.ready += 1
        else:
            self.failed += 1
        if self.ready + self.failed >= self.expected:
            self.all_settled.set()

    async def wait(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self.all_settled.wait(), timeout)
        except TimeoutError:
            raise BenchError(
                f"only {self.ready} of {self.expected} subscriptions got their first heartbeat in {timeout} s"
            ) from None
        if self.failed:
            raise BenchError(f"{self.failed} of {self.expected} subscriptions failed to start")


@dataclass(eq=False)
class Subscription:
    """One Subscribe stream: decodes every message, counts items, checks sequence order."""

    method: grpc.aio.UnaryStreamMultiCallable
    request: bytes
    metadata: tuple[tuple[str, str], ...]
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
    error: str | None = None

    async def run(self) -> None:
        """Read the stream until it ends, fails or the task is cancelled."""
        call = self.method(self.request, metadata=self.metadata)
        started = False
        try:
            while True:
                raw = await call.read()
                if raw is grpc.aio.EOF:
                    break
                now_ns = time.perf_counter_ns()
                message = cachepubsub_pb2._SubscriptionItem.FromString(raw)
                kind = message.WhichOneof("kind")
                if kind == "item":
                    self._on_item(now_ns, message.item)
                elif kind == "heartbeat":
                    self.heartbeats += 1
                elif kind == "discontinuity":
                    self._on_discontinuity(message.discontinuity)
                if not started:
                    started = True
                    self.readiness.settle(ok=kind == "heartbeat")
                    if kind != "heartbeat":
                        self.error = f"first message was {kind}, not a heartbeat"
        except grpc.aio.AioRpcError as error:
            self.error = f"{error.code().name}: {error.details()}"
        finally:
            call.cancel()
            if not started:
                self.readiness.settle(ok=False)

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
    """Many subscriptions to one topic spread over several connections."""

    target: Target
    topic: str
    listener: DeliveryListener
    count: int
    channels: int
    subscriptions: list[Subscription] = field(default_factory=list)
    _open_channels: list[grpc.aio.Channel] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self, timeout: float) -> None:
        """Open every subscription and wait until each has read its first heartbeat."""
        request = cachepubsub_pb2._SubscriptionRequest(
            cache_name=self.target.cache, topic=self.topic
        ).SerializeToString()
        readiness = Readiness(self.count)
        self._open_channels = [self.target.open_channel() for _ in range(max(1, self.channels))]
        methods = [
            channel.unary_stream(SUBSCRIBE, request_serializer=None, response_deserializer=None)
            for channel in self._open_channels
        ]
        for index in range(self.count):
            method = methods[index % len(methods)]
            subscription = Subscription(method, request, self.target.metadata, self.listener, readiness)
            self.subscriptions.append(subscription)
            self._tasks.append(asyncio.create_task(subscription.run()))
        await readiness.wait(timeout)

    async def close(self) -> None:
        """Cancel every stream, wait for its task, and close the connections."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(channel.close() for channel in self._open_channels))

    def anomalies(self) -> dict[str, Any]:
        """Sums of what a clean run does not have: gaps, reorders, discontinuities, stream errors."""
        errors = Counter(s.error for s in self.subscriptions if s.error)
        return {
            "gaps": sum(s.gaps for s in self.subscriptions),
            "out_of_order": sum(s.out_of_order for s in self.subscriptions),
            "discontinuities": sum(s.discontinuities for s in self.subscriptions),
            "stream_errors": dict(errors),
        }


# --- scenarios -------------------------------------------------------------------------------------------


async def run_publish(target: Target, args: argparse.Namespace) -> dict[str, Any]:
    """Keep ``concurrency`` publishes in flight for the measured window."""
    request = encode_publish(target.cache, unique_topic("publish"), b"x" * args.payload_size)
    channels = [target.open_channel() for _ in range(args.channels)]
    methods = [ch.unary_unary(PUBLISH, request_serializer=None, response_deserializer=None) for ch in channels]
    completed = 0
    errors: Counter[str] = Counter()
    stop = asyncio.Event()

    async def publisher(method: grpc.aio.UnaryUnaryMultiCallable) -> None:
        nonlocal completed
        while not stop.is_set():
            try:
                await method(request, metadata=target.metadata)
            except grpc.aio.AioRpcError as error:
                errors[error.code().name] += 1
                if sum(errors.values()) > 100:
                    stop.set()
                continue
            completed += 1

    try:
        workers = [asyncio.create_task(publisher(methods[i % len(methods)])) for i in range(args.concurrency)]
        await asyncio.sleep(args.warmup)
        start = Snapshot.take(target, completed)
        await asyncio.sleep(args.duration)
        end = Snapshot.take(target, completed)
        stop.set()
        await asyncio.gather(*workers)
    finally:
        await asyncio.gather(*(channel.close() for channel in channels))
    if sum(errors.values()) > 100:
        raise BenchError(f"publishes failed: {dict(errors)}")
    report = window_report(start, end, "publishes")
    report.update(concurrency=args.concurrency, channels=args.channels, errors=dict(errors))
    return report


class FanoutTracker:
    """Counts deliveries and knows the highest message every subscriber has read (the credit)."""

    def __init__(self, subscribers: int) -> None:
        self.subscribers = subscribers
        self.deliveries = 0
        self.fully_delivered = 0
        self.advanced = asyncio.Event()
        self._readers: dict[int, int] = {}  # message position -> subscribers that reached it

    def on_item(self, subscription: Subscription, now_ns: int, item: cachepubsub_pb2._TopicItem) -> None:
        self.deliveries += 1
        self._reach(subscription.position)

    def on_skipped(self, subscription: Subscription, first: int, last: int) -> None:
        for position in range(first, last + 1):
            self._reach(position)

    def _reach(self, position: int) -> None:
        readers = self._readers.get(position, 0) + 1
        if readers < self.subscribers:
            self._readers[position] = readers
            return
        self._readers.pop(position, None)
        # Each subscriber reads in order, so the last one to reach a position has reached all before it.
        self.fully_delivered = position
        self.advanced.set()


async def run_fanout(target: Target, args: argparse.Namespace) -> dict[str, Any]:
    """One publisher, K subscribers; the publisher runs at most ``window`` messages ahead."""
    topic = unique_topic(f"fanout{args.subscribers}")
    tracker = FanoutTracker(args.subscribers)
    pool = SubscriberPool(target, topic, tracker, args.subscribers, -(-args.subscribers // args.streams))
    request = encode_publish(target.cache, topic, b"x" * args.payload_size)
    channel = target.open_channel()
    publish = channel.unary_unary(PUBLISH, request_serializer=None, response_deserializer=None)
    published = 0
    stop = asyncio.Event()

    async def publisher() -> None:
        nonlocal published
        while not stop.is_set():
            while published - tracker.fully_delivered >= args.window:
                tracker.advanced.clear()
                try:
                    await asyncio.wait_for(tracker.advanced.wait(), args.stall_timeout)
                except TimeoutError:
                    raise BenchError(
                        f"no delivery progress for {args.stall_timeout} s "
                        f"(published {published}, delivered to all {tracker.fully_delivered})"
                    ) from None
                if stop.is_set():
                    return
            published += 1
            await publish(request, metadata=target.metadata)

    try:
        await pool.start(args.ready_timeout)
        workers = [asyncio.create_task(publisher()) for _ in range(args.inflight)]
        await asyncio.sleep(args.warmup)
        start = Snapshot.take(target, tracker.deliveries)
        published_at_start = published
        await asyncio.sleep(args.duration)
        end = Snapshot.take(target, tracker.deliveries)
        published_in_window = published - published_at_start
        stop.set()
        tracker.advanced.set()
        await asyncio.gather(*workers)
    finally:
        await pool.close()
        await channel.close()
    report = window_report(start, end, "deliveries")
    report.update(
        subscribers=args.subscribers,
        window=args.window,
        publishes_per_s=published_in_window / report["seconds"],
        **pool.anomalies(),
    )
    return report


class LatencyRecorder:
    """Publish-to-deliver latency of every delivery of a measured publish."""

    def __init__(self, sent_ns: list[int], first_measured: int) -> None:
        self.sent_ns = sent_ns
        self.first_measured = first_measured
        self.latencies_ns: list[int] = []
        self.deliveries = 0
        self.expected = -1
        self.all_delivered = asyncio.Event()

    def on_item(self, subscription: Subscription, now_ns: int, item: cachepubsub_pb2._TopicItem) -> None:
        payload = item.value.binary
        if payload[:4] == _STAMP_MAGIC:
            _, index, stamp_ns = _STAMP.unpack_from(payload)
        else:  # a server that does not echo payloads: the n-th item belongs to the n-th publish
            index = subscription.position - 1
            stamp_ns = self.sent_ns[index] if index < len(self.sent_ns) else now_ns
        if index >= self.first_measured:
            self.latencies_ns.append(now_ns - stamp_ns)
        self._count()

    def on_skipped(self, subscription: Subscription, first: int, last: int) -> None:
        pass

    def _count(self) -> None:
        self.deliveries += 1
        if self.deliveries == self.expected:
            self.all_delivered.set()


def percentile(sorted_values: Sequence[int], fraction: float) -> int:
    """The nearest-rank percentile of already sorted values."""
    rank = max(0, min(len(sorted_values) - 1, round(fraction * len(sorted_values) + 0.5) - 1))
    return sorted_values[rank]


async def run_latency(target: Target, args: argparse.Namespace) -> dict[str, Any]:
    """Publish at a fixed rate to K subscribers; time every delivery."""
    topic = unique_topic("latency")
    warmup_publishes = round(args.warmup * args.rate)
    total = warmup_publishes + round(args.duration * args.rate)
    sent_ns: list[int] = []
    recorder = LatencyRecorder(sent_ns, warmup_publishes)
    pool = SubscriberPool(target, topic, recorder, args.subscribers, -(-args.subscribers // args.streams))
    channel = target.open_channel()
    publish = channel.unary_unary(PUBLISH, request_serializer=None, response_deserializer=None)
    padding = b"x" * max(0, args.payload_size - _STAMP.size)
    loop = asyncio.get_running_loop()
    in_flight: set[asyncio.Task[None]] = set()

    async def send(request: bytes) -> None:
        await publish(request, metadata=target.metadata)
    try:
        await pool.start(args.ready_timeout)
        recorder.expected = total * args.subscribers
        begin = loop.time() + 0.05
        start: Snapshot | None = None
        for index in range(total):
            delay = begin + index / args.rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if index == warmup_publishes:
                start = Snapshot.take(target, recorder.deliveries)
            stamp_ns = time.perf_counter_ns()
            sent_ns.append(stamp_ns)
            request = encode_publish(target.cache, topic, _STAMP.pack(_STAMP_MAGIC, index, stamp_ns) + padding)
            # Open loop: a slow publish must not delay the next one.
            task = asyncio.create_task(send(request))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        await asyncio.gather(*in_flight)
        try:
            await asyncio.wait_for(recorder.all_delivered.wait(), args.stall_timeout)
        except TimeoutError:
            pass  # reported as missing deliveries
        end = Snapshot.take(target, recorder.deliveries)
    finally:
        await pool.close()
        await channel.close()
    assert start is not None
    latencies = sorted(recorder.latencies_ns)
    if not latencies:
        raise BenchError("no deliveries")
    report = window_report(start, end, "deliveries")
    report.update(
        subscribers=args.subscribers,
        rate=args.rate,
        samples=len(latencies),
        missing=recorder.expected - recorder.deliveries,
        p50_ms=percentile(latencies, 0.50) / 1e6,
        p90_ms=percentile(latencies, 0.90) / 1e6,
        p99_ms=percentile(latencies, 0.99) / 1e6,
        max_ms=latencies[-1] / 1e6,
        mean_ms=statistics.fmean(latencies) / 1e6,
        **pool.anomalies(),
    )
    return report


async def run_idle(target: Target, args: argparse.Namespace) -> dict[str, Any]:
    """Open many idle subscriptions; report the server's RSS growth per subscription."""
    if target.server_pid is None:
        raise BenchError("the idle scenario needs --server-pid")
    # Warm up first, so that one-time allocations (first connection, first topic) are not charged.
    warm = SubscriberPool(target, unique_topic("idle-warmup"), _Ignore(), 10, 1)
    await warm.start(args.ready_timeout)
    await warm.close()
    await asyncio.sleep(args.settle)
    rss_before = rss_kib(target.server_pid)
    pool = SubscriberPool(target, unique_topic("idle"), _Ignore(), args.subscribers, args.channels)
    opened_at = time.perf_counter()
    try:
        await pool.start(args.ready_timeout)
        open_seconds = time.perf_counter() - opened_at
        await asyncio.sleep(args.settle)
        rss_after = rss_kib(target.server_pid)
        anomalies = pool.anomalies()
    finally:
        await pool.close()
    return {
        "subscriptions": args.subscribers,
        "channels": args.channels,
        "open_seconds": open_seconds,
        "rss_before_kib": rss_before,
        "rss_after_kib": rss_after,
        "rss_kib_per_subscription": (rss_after - rss_before) / args.subscribers,
        **anomalies,
    }


SCENARIOS = {"publish": run_publish, "fanout": run_fanout, "latency": run_latency, "idle": run_idle}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Load generators for a Momento Topics gRPC server.")
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--address", required=True, help="host:port of the server")
    parser.add_argument("--cache", default="bench")
    parser.add_argument("--token", default="", help="sent in the authorization header; empty = anonymous")
    parser.add_argument("--server-pid", type=int, help="read the server's CPU time and RSS from /proc")
    parser.add_argument("--no-create-cache", action="store_true", help="do not CreateCache first")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of load before measuring")
    parser.add_argument("--payload-size", type=int, default=64, help="bytes of each published value")
    parser.add_argument("--concurrency", type=int, default=32, help="publish: calls in flight")
    parser.add_argument("--channels", type=int, default=2, help="publish, idle: connections")
    parser.add_argument("--subscribers", type=int, default=100, help="fanout, latency, idle: subscriptions")
    parser.add_argument("--streams", type=int, default=50, help="fanout, latency: subscriptions per connection")
    parser.add_argument("--window", type=int, default=32, help="fanout: messages ahead of the slowest reader")
    parser.add_argument("--inflight", type=int, default=4, help="fanout: publish calls in flight")
    parser.add_argument("--rate", type=float, default=50.0, help="latency: publishes per second")
    parser.add_argument("--settle", type=float, default=1.0, help="idle: seconds before reading RSS")
    parser.add_argument("--ready-timeout", type=float, default=120.0, help="seconds to wait for heartbeats")
    parser.add_argument("--stall-timeout", type=float, default=10.0, help="seconds without progress = fail")
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run one scenario against the target and return its report."""
    target = Target(args.address, args.cache, args.token, args.server_pid)
    if not args.no_create_cache:
        await ensure_cache(target)
    report = await SCENARIOS[args.scenario](target, args)
    return {"scenario": args.scenario, **report}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        report = uvloop.run(run(args))
    except (BenchError, grpc.aio.AioRpcError) as error:
        print(json.dumps({"scenario": args.scenario, "error": str(error)}), flush=True)
        return 1
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
