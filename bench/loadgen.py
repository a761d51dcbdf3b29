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
  and a ``time.monotonic_ns()`` stamp (one clock for all processes) -> p50/p99 publish-to-deliver over all
  deliveries. A server that does not echo payloads (the ceiling) is timed by delivery order instead: the
  n-th item a subscriber reads belongs to the n-th publish.
- ``idle``: ``--subscribers`` idle subscriptions spread over ``--channels`` connections (one HTTP/2
  connection carries ~100 concurrent streams by default) -> server RSS growth per subscription once every
  stream has had its first heartbeat.

``fanout`` and ``latency`` take ``--processes P``: the subscribers are split over P processes (this one,
which also publishes, and P - 1 children; see ``bench/_split.py``), so that decoding the streams of one
client process is not what bounds the server. The fan-out publisher then runs at most ``--window`` messages
ahead of the slowest subscriber of any process; deliveries, latency samples and anomalies are those of all
processes, and the client CPU (``client_cores``) is their sum (``client_cores_by_process`` shows each).

``fanout`` and ``latency`` also take ``--client h2``: publish and read with ``bench/_h2client.py`` (asyncio +
``h2``, every stream's messages of one read handed over in that read) instead of grpc.aio.

Subscribers decode every message, count items and check that sequence numbers increase when the server
provides them (gaps, reorders and discontinuities are reported; a clean run has none).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import struct
import sys
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import grpc
import uvloop
from _client import (
    PUBLISH,
    BenchError,
    Snapshot,
    SubscriberPool,
    Subscription,
    Target,
    encode_publish,
    ensure_cache,
    ignore_items,
    unique_topic,
    window_report,
)
from _h2client import CallFailed, H2Channel
from _proc import rss_kib
from _split import (
    Listeners,
    SubscriberProcesses,
    emit,
    merge_anomalies,
    report_progress,
    shares,
    stop_requested,
)
from momento_wire_types import cachepubsub_pb2

# Latency payloads: magic, publish index, monotonic_ns() at publish; padded to the payload size.
_STAMP = struct.Struct("<4sIq")
_STAMP_MAGIC = b"TBN1"


# --- scenarios -------------------------------------------------------------------------------------------


async def run_publish(target: Target, args: argparse.Namespace) -> dict[str, Any]:
    """Keep ``concurrency`` publishes in flight for the measured window."""
    request = encode_publish(target.cache, unique_topic("publish"), b"x" * args.payload_size)
    channels = [target.open_channel() for _ in range(args.channels)]
    methods = [ch.unary_unary(PUBLISH, request_serializer=None, response_deserializer=None) for ch in channels]
    completed = 0
    errors: Counter[str] = Counter()
    stop = asyncio.Event()

    async def publisher(method: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]) -> None:
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
        await asyncio.gather(*(channel.close(grace=None) for channel in channels))
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


class Publisher:
    """The fan-out and latency publisher: one connection (to ``--publish-address``, another node of one cluster,
    if given), on grpc.aio or, with ``--client h2``, on `bench/_h2client.py`; `open` one."""

    def __init__(self, metadata: tuple[tuple[str, str], ...], channel: grpc.aio.Channel | H2Channel) -> None:
        self._metadata = metadata
        self._channel = channel
        if isinstance(channel, grpc.aio.Channel):
            self._publish = channel.unary_unary(PUBLISH, request_serializer=None, response_deserializer=None)

    @classmethod
    async def open(cls, target: Target, args: argparse.Namespace) -> Publisher:
        """Connect to the publish address with the client ``--client`` names."""
        address: str = args.publish_address or target.address
        if args.client == "h2":
            return cls(target.metadata, await H2Channel.connect(address))
        return cls(target.metadata, grpc.aio.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)]))

    async def publish(self, request: bytes) -> None:
        """Publish one pre-encoded ``_PublishRequest``."""
        channel = self._channel
        if isinstance(channel, H2Channel):
            await channel.unary(PUBLISH, request, self._metadata)
        else:
            await self._publish(request, metadata=self._metadata)

    async def close(self) -> None:
        """Close the connection."""
        channel = self._channel
        if isinstance(channel, H2Channel):
            channel.close()
            await channel.closed
        else:
            await channel.close(grace=None)


def pool_channels(subscribers: int, args: argparse.Namespace) -> int:
    """Connections for ``subscribers`` subscriptions at ``--streams`` per connection."""
    streams: int = args.streams
    return -(-subscribers // streams)


def helper_commands(args: argparse.Namespace, topic: str, counts: list[int]) -> list[list[str]]:
    """The command lines of the child processes holding ``counts`` subscribers of ``topic``."""
    common = [
        sys.executable, __file__, args.scenario, "--subscriber-topic", topic, "--address", args.address,
        "--cache", args.cache, "--token", args.token, "--streams", str(args.streams),
        "--ready-timeout", str(args.ready_timeout), "--warmup", str(args.warmup), "--rate", str(args.rate),
        "--client", args.client,
    ]  # fmt: skip
    return [[*common, "--subscribers", str(count)] for count in counts]


async def run_for(seconds: float, publishers: list[asyncio.Task[None]]) -> None:
    """Let the publishers run for ``seconds``; raise at once what one of them raised (a stall, a failed process)."""
    done, _ = await asyncio.wait(publishers, timeout=seconds, return_when=asyncio.FIRST_EXCEPTION)
    for publisher in done:
        publisher.result()


async def run_fanout(target: Target, args: argparse.Namespace) -> dict[str, Any]:
    """One publisher, K subscribers; the publisher runs at most ``window`` messages ahead."""
    topic = unique_topic(f"fanout{args.subscribers}")
    local, *remote = shares(args.subscribers, args.processes)
    tracker = FanoutTracker(local)
    helpers = SubscriberProcesses(on_progress=tracker.advanced.set)
    pool = SubscriberPool(target, topic, tracker, local, pool_channels(local, args), args.client)
    request = encode_publish(target.cache, topic, b"x" * args.payload_size)
    publisher = await Publisher.open(target, args)
    published = 0
    stop = asyncio.Event()

    def fully_delivered() -> int:
        return min(tracker.fully_delivered, helpers.fully_delivered)

    async def publish() -> None:
        nonlocal published
        while not stop.is_set():
            while published - fully_delivered() >= args.window:
                tracker.advanced.clear()
                try:
                    await asyncio.wait_for(tracker.advanced.wait(), args.stall_timeout)
                except TimeoutError:
                    raise BenchError(
                        f"no delivery progress for {args.stall_timeout} s "
                        f"(published {published}, delivered to all {fully_delivered()})"
                    ) from None
                if stop.is_set():
                    return
                helpers.check()
            published += 1
            await publisher.publish(request)

    workers: list[asyncio.Task[None]] = []
    try:
        await asyncio.gather(
            helpers.start(helper_commands(args, topic, remote), args.ready_timeout), pool.start(args.ready_timeout)
        )
        workers = [asyncio.create_task(publish()) for _ in range(args.inflight)]
        await run_for(args.warmup, workers)
        start = helpers.snapshot(target, tracker.deliveries)
        published_at_start = published
        await run_for(args.duration, workers)
        end = helpers.snapshot(target, tracker.deliveries)
        published_in_window = published - published_at_start
        stop.set()
        tracker.advanced.set()
        await asyncio.gather(*workers)
        helper_reports = await helpers.stop()
    finally:
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        await helpers.close()
        await pool.close()
        await publisher.close()
    report = window_report(start, end, "deliveries")
    report.update(
        subscribers=args.subscribers,
        loadgen_processes=args.processes,
        client=args.client,
        window=args.window,
        publishes_per_s=published_in_window / report["seconds"],
        **merge_anomalies([pool.anomalies(), *helper_reports]),
    )
    return report


class LatencyRecorder:
    """Publish-to-deliver latency of every delivery of a measured publish."""

    def __init__(self, sent_ns: list[int] | None, first_measured: int) -> None:
        self.sent_ns = sent_ns  # None in a child process: the publishing process has the send times
        self.first_measured = first_measured
        self.latencies_ns: list[int] = []
        self.unmatched: list[tuple[int, int]] = []  # (publish index, delivery time) for the publisher to match
        self.deliveries = 0
        self.expected = -1
        self.all_delivered = asyncio.Event()

    def on_item(self, subscription: Subscription, now_ns: int, item: cachepubsub_pb2._TopicItem) -> None:
        payload = item.value.binary
        if payload[:4] == _STAMP_MAGIC:
            _, index, stamp_ns = _STAMP.unpack_from(payload)
        else:  # a server that does not echo payloads: the n-th item belongs to the n-th publish
            index = subscription.position - 1
            if self.sent_ns is None:
                if index >= self.first_measured:
                    self.unmatched.append((index, now_ns))
                self._count()
                return
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


def warmup_publishes(args: argparse.Namespace) -> int:
    """Latency: the publishes before this index are not measured."""
    warmup: float = args.warmup
    rate: float = args.rate
    return round(warmup * rate)


async def run_latency(target: Target, args: argparse.Namespace) -> dict[str, Any]:
    """Publish at a fixed rate to K subscribers; time every delivery."""
    topic = unique_topic("latency")
    warmup = warmup_publishes(args)
    total = warmup + round(args.duration * args.rate)
    sent_ns: list[int] = []
    local, *remote = shares(args.subscribers, args.processes)
    recorder = LatencyRecorder(sent_ns, warmup)
    helpers = SubscriberProcesses(on_progress=lambda: None)
    pool = SubscriberPool(target, topic, recorder, local, pool_channels(local, args), args.client)
    publisher = await Publisher.open(target, args)
    padding = b"x" * max(0, args.payload_size - _STAMP.size)
    loop = asyncio.get_running_loop()
    in_flight: set[asyncio.Task[None]] = set()

    try:
        await asyncio.gather(
            helpers.start(helper_commands(args, topic, remote), args.ready_timeout), pool.start(args.ready_timeout)
        )
        recorder.expected = total * local
        begin = loop.time() + 0.05
        start: Snapshot | None = None
        for index in range(total):
            delay = begin + index / args.rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if index == warmup:
                start = helpers.snapshot(target, recorder.deliveries)
            stamp_ns = time.monotonic_ns()
            sent_ns.append(stamp_ns)
            request = encode_publish(target.cache, topic, _STAMP.pack(_STAMP_MAGIC, index, stamp_ns) + padding)
            # Open loop: a slow publish must not delay the next one.
            task = asyncio.create_task(publisher.publish(request))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        await asyncio.gather(*in_flight)
        with contextlib.suppress(TimeoutError):  # what did not arrive is reported as missing
            await asyncio.wait_for(
                asyncio.gather(recorder.all_delivered.wait(), helpers.delivered(total * sum(remote))),
                args.stall_timeout,
            )
        end = helpers.snapshot(target, recorder.deliveries)
        helper_reports = await helpers.stop()
    finally:
        await helpers.close()
        await pool.close()
        await publisher.close()
    assert start is not None
    samples = recorder.latencies_ns
    for helper in helper_reports:
        samples += helper["latencies_ns"]
        samples += [
            now_ns - (sent_ns[index] if index < len(sent_ns) else now_ns) for index, now_ns in helper["unmatched"]
        ]
    latencies = sorted(samples)
    if not latencies:
        raise BenchError("no deliveries")
    report = window_report(start, end, "deliveries")
    report.update(
        subscribers=args.subscribers,
        loadgen_processes=args.processes,
        client=args.client,
        rate=args.rate,
        samples=len(latencies),
        missing=total * args.subscribers - recorder.deliveries - sum(helper["deliveries"] for helper in helper_reports),
        p50_ms=percentile(latencies, 0.50) / 1e6,
        p90_ms=percentile(latencies, 0.90) / 1e6,
        p99_ms=percentile(latencies, 0.99) / 1e6,
        max_ms=latencies[-1] / 1e6,
        mean_ms=statistics.fmean(latencies) / 1e6,
        **merge_anomalies([pool.anomalies(), *helper_reports]),
    )
    return report


async def run_subscriber_process(target: Target, args: argparse.Namespace) -> dict[str, Any]:
    """A child of a ``--processes`` run: hold ``--subscribers`` subscriptions of the main process's topic.

    It reports progress on stdout until a line or end of file on stdin, then its deliveries, anomalies and
    (latency) samples as its last line (`bench/_split.py` has the protocol). Progress is the fan-out credit
    in both scenarios: in ``latency`` the main process waits for every delivery with it.
    """
    tracker = FanoutTracker(args.subscribers)
    recorder = LatencyRecorder(None, warmup_publishes(args)) if args.scenario == "latency" else None
    listener = tracker if recorder is None else Listeners(tracker, recorder)
    pool = SubscriberPool(
        target, args.subscriber_topic, listener, args.subscribers, pool_channels(args.subscribers, args), args.client
    )
    stop = asyncio.create_task(stop_requested())
    reporting = asyncio.create_task(
        report_progress(tracker.advanced, lambda: (tracker.fully_delivered, tracker.deliveries))
    )
    starting = asyncio.create_task(pool.start(args.ready_timeout))
    try:
        await asyncio.wait({starting, stop}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():  # asked to stop (or orphaned) before all subscriptions were ready
            raise BenchError("stopped before its subscriptions were ready")
        starting.result()
        emit("ready")
        await stop
    finally:
        tasks = (starting, stop, reporting)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await pool.close()
    report: dict[str, Any] = {"deliveries": tracker.deliveries, **pool.anomalies()}
    if recorder is not None:
        report |= {"latencies_ns": recorder.latencies_ns, "unmatched": recorder.unmatched}
    return report


async def run_idle(target: Target, args: argparse.Namespace) -> dict[str, Any]:
    """Open many idle subscriptions; report the server's RSS growth per subscription.

    Measured on a second set of ``--subscribers``, opened while the first is held: the first absorbs one-time
    allocations (first connections and topic) and the free space the server's start-up left in its heap, which
    depends on what it imported, not on what a subscription costs (measured: 3.45 against 4.19 KiB per
    subscription at 10,000 on the same code, with and without the Redis client and the SDK imported at start).
    """
    if target.server_pid is None:
        raise BenchError("the idle scenario needs --server-pid")
    held = SubscriberPool(target, unique_topic("idle-held"), ignore_items, args.subscribers, args.channels)
    pool = SubscriberPool(target, unique_topic("idle"), ignore_items, args.subscribers, args.channels)
    try:
        await held.start(args.ready_timeout)
        await asyncio.sleep(args.settle)
        rss_before = rss_kib(target.server_pid)
        opened_at = time.perf_counter()
        await pool.start(args.ready_timeout)
        open_seconds = time.perf_counter() - opened_at
        await asyncio.sleep(args.settle)
        rss_after = rss_kib(target.server_pid)
        anomalies = pool.anomalies()
    finally:
        await pool.close()
        await held.close()
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
    parser.add_argument("--publish-address", help="fanout, latency: publish to this host:port instead (cross-node)")
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
    parser.add_argument("--inflight", type=int, default=8, help="fanout: publish calls in flight")
    parser.add_argument("--rate", type=float, default=50.0, help="latency: publishes per second")
    parser.add_argument("--settle", type=float, default=1.0, help="idle: seconds before reading RSS")
    parser.add_argument("--ready-timeout", type=float, default=120.0, help="seconds to wait for heartbeats")
    parser.add_argument("--stall-timeout", type=float, default=10.0, help="seconds without progress = fail")
    parser.add_argument(
        "--processes", type=int, default=1, help="fanout, latency: split the subscribers over this many processes"
    )
    parser.add_argument(
        "--client",
        choices=("grpcio", "h2"),
        default="grpcio",
        help="fanout, latency: publish and read the streams with grpc.aio or with bench/_h2client.py",
    )
    # Internal: run as a child process of a --processes run, subscribed to this topic (see bench/_split.py).
    parser.add_argument("--subscriber-topic", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.processes != 1 and args.scenario not in ("fanout", "latency"):
        parser.error("--processes applies to the fanout and latency scenarios only")
    if not 1 <= args.processes <= args.subscribers:
        parser.error("--processes must be between 1 and --subscribers")
    if args.subscriber_topic and args.scenario not in ("fanout", "latency"):
        parser.error("--subscriber-topic applies to the fanout and latency scenarios only")
    return args


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run one scenario against the target and return its report."""
    target = Target(args.address, args.cache, args.token, args.server_pid)
    if args.subscriber_topic:  # a child of a --processes run: the main process has created the cache
        return await run_subscriber_process(target, args)
    if not args.no_create_cache:
        await ensure_cache(target)
    report = await SCENARIOS[args.scenario](target, args)
    return {"scenario": args.scenario, **report}


def main(argv: list[str] | None = None) -> int:
    """Run the scenario named on the command line; print its report (or its error) as one JSON line."""
    args = parse_args(argv)
    # A child of a --processes run writes unbuffered and quietly drops its report if its parent is gone.
    output = emit if args.subscriber_topic else lambda line: print(line, flush=True)
    try:
        report = uvloop.run(run(args))
    except (BenchError, CallFailed, grpc.aio.AioRpcError) as error:
        output(json.dumps({"scenario": args.scenario, "error": str(error)}))
        return 1
    output(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
