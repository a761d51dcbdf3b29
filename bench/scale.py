"""Scale: many idle subscriptions, what they cost, and how fast a publish reaches them all.

Two steps of issue 20, each a tidings server (h2 transport) and load-generator processes with a lean raw-frame
HTTP/2 client (`bench/_rawh2.py`; `bench/_scale_subscribers.py` holds the streams in ``--client-processes``
children, the main process publishes):

- **process** (the default): one server process on the memory engine, 100,000 subscriptions over 500
  connections, 100 topics. Targets: RSS per subscription <= 5 KiB, opened in <= 10 s, idle CPU <= 5% of a
  core, publish to the last subscriber <= 0.5 s;
- **machine** (``--machine``): 1,000,000 subscriptions over 5,000 connections, 1,000 topics, to ``--workers 2``
  on Redis (its own redis-server). Every subscription must open and heartbeat, and none may lose the publish;
  the figures are recorded.

Each run measures:

1. **open**: the Subscribe streams, spread over the topics, timed from the first request to the last stream's
   first heartbeat;
2. **memory**: the server's RSS growth per subscription (supervisor and workers summed);
3. **idle**: the server's CPU while every stream is idle for ``--idle-seconds`` (at least two heartbeat
   intervals: heartbeats are all it does), as a fraction of one core, the heartbeats the client received, and
   how many streams had at least one;
4. **publish**: one publish to each topic at once; the time from the first publish until the last
   subscription received its message (every subscription must get exactly one).

The figures are absolute, on this machine (2 cores): there is no baseline that holds 100,000 subscriptions.

Usage::

    python bench/scale.py                                  # 100,000 subscriptions (~1 minute)
    python bench/scale.py --quick                          # 10,000, shorter idle window
    python bench/scale.py --machine                        # 1,000,000 over --workers 2 on Redis (minutes)
    python bench/scale.py --machine --quick                # 20,000 over 100 connections
    python bench/scale.py --write docs/performance.md      # also replace the bench:scale (or scale-machine) section
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime
import os
import platform
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _plot import draw_scale
from _proc import cpu_seconds, free_port, machine_busy_seconds, running, tree_rss_kib
from _rawh2 import Call, RawChannel, UnaryCalls, request_header_block
from _report import write_section
from _scale_subscribers import HOST, SubscriberProcesses, child_command
from _split import shares
from momento_wire_types import cachepubsub_pb2 as pb
from redis_bench import start_redis

CACHE = "scale"
PUBLISH = "/cache_client.pubsub.Pubsub/Publish"
HEARTBEAT_INTERVAL = 10.0  # the server's default
# The machine step's client processes keep at most this many streams each waiting for their first heartbeat:
# 1,000,000 requests at once leave each worker a backlog of 2,500 connections' requests, decoded 4 KiB per
# connection per loop turn; a turn then outlasts --request-timeout (10 s) and requests whose HEADERS and DATA
# fell in different turns end DEADLINE_EXCEEDED ("the request did not arrive in time").
MACHINE_OPEN_WINDOW = 10_000
OPEN_SAMPLE_S = 0.25  # how often the opening is read for the plot


@dataclasses.dataclass(frozen=True)
class Shape:
    """What a run holds: subscriptions over connections and topics, the server's workers, the client's processes."""

    machine: bool  # the machine step: --workers on Redis
    subscriptions: int
    connections: int
    topics: int
    workers: int
    client_processes: int
    idle_seconds: float
    quick: bool
    open_window: int  # streams per client process waiting for their first heartbeat at a time (0: no limit)


@dataclasses.dataclass(frozen=True)
class Cpu:
    """CPU seconds used so far (or in a phase) by the server (all its processes), the load generator, Redis."""

    server: float
    client: float
    redis: float

    def __sub__(self, other: Cpu) -> Cpu:
        return Cpu(self.server - other.server, self.client - other.client, self.redis - other.redis)


@dataclasses.dataclass(frozen=True)
class Meter:
    """Reads `Cpu` of the processes of a run."""

    server: int
    clients: tuple[int, ...]
    redis: int | None

    def read(self) -> Cpu:
        times = os.times()
        own = float(times.user + times.system)
        redis = cpu_seconds(self.redis) if self.redis is not None else 0.0
        return Cpu(cpu_seconds(self.server), own + sum(cpu_seconds(pid) for pid in self.clients), redis)


@dataclasses.dataclass(frozen=True)
class Idle:
    """The idle window: its length, the server's (and others') CPU, what the client heard."""

    seconds: float
    cpu: Cpu
    heartbeats: int
    heard: int  # streams that had a heartbeat during the window
    other_cores: float  # what other processes used meanwhile
    per_second: tuple[float, ...] = ()  # the server's CPU in each second of the window (cores)

    @property
    def server_cores(self) -> float:
        return self.cpu.server / self.seconds


@dataclasses.dataclass(frozen=True)
class OpenSample:
    """One reading while the streams open: seconds since the first request, streams open, the server's RSS
    growth (KiB) and CPU seconds since then."""

    seconds: float
    opened: int
    rss_kib: int
    cpu_seconds: float


@dataclasses.dataclass(frozen=True)
class Figures:
    shape: Shape
    open_seconds: float
    open_cpu: Cpu
    rss_kib_per_subscription: float
    idle: Idle
    publish_to_last_seconds: float | None  # None: not every subscription got its item in time
    publish_cpu: Cpu  # from the first publish until the last delivery
    items: int
    opening: tuple[OpenSample, ...] = ()


def server_command(port: int, data_dir: str, shape: Shape, redis_url: str | None) -> list[str]:
    command = [
        sys.executable, "-m", "tidings", "server", "--host", HOST, "--port", str(port), "--http-port", "0",
        "--data-dir", data_dir, "--create-cache", CACHE, "--heartbeat-interval", str(HEARTBEAT_INTERVAL),
        "--max-subscriptions-per-cache", str(shape.subscriptions + 1000),
    ]  # fmt: skip
    if redis_url is not None:
        # Per-worker limits: each must fit all, since the kernel's spread of connections is not exact.
        limit = str(shape.connections + 100)
        command += ["--redis-url", redis_url, "--workers", str(shape.workers)]
        command += ["--max-connections", limit, "--max-connections-per-address", limit]
    return command


def child_commands(port: int, shape: Shape) -> list[list[str]]:
    """One `_scale_subscribers` child per client process, each with an even share of streams and connections."""
    commands, first = [], 0
    for count, connections in zip(
        shares(shape.subscriptions, shape.client_processes),
        shares(shape.connections, shape.client_processes),
        strict=True,
    ):
        commands.append(child_command(port, CACHE, first, count, connections, shape.topics, shape.open_window))
        first += count
    return commands


def open_timeout(shape: Shape) -> float:
    return max(120.0, shape.subscriptions / 1000)


async def measure(port: int, server_pid: int, redis_pid: int | None, shape: Shape) -> Figures:
    address = f"{HOST}:{port}"
    block = request_header_block(PUBLISH, address, (("cache", CACHE),))
    publishes = [
        Call.of(block, pb._PublishRequest(cache_name=CACHE, topic=f"t{topic}", value=pb._TopicValue(text="x" * 64))
                .SerializeToString())
        for topic in range(shape.topics)
    ]  # fmt: skip
    async with SubscriberProcesses(child_commands(port, shape)) as subscribers:
        meter = Meter(server_pid, subscribers.pids, redis_pid)
        await asyncio.sleep(1.0)  # the connections settle before the baseline RSS
        rss_before = tree_rss_kib(server_pid)
        open_seconds, open_cpu, samples = await opening(subscribers, meter, shape, rss_before)
        await asyncio.sleep(2.0)
        rss_after = tree_rss_kib(server_pid)
        idle = await idling(subscribers, meter, shape.idle_seconds)
        # Connected only now: a connection without calls for --grpc-idle-timeout (300 s) is told to go away.
        unary = UnaryCalls()
        publisher = await RawChannel.connect(address, unary.on_message, unary.on_end)
        published_at, cpu = time.monotonic(), meter.read()
        await unary.call_all(publisher, publishes)
        publish_to_last: float | None = None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(60.0, shape.subscriptions / 10_000)):
                publish_to_last = await subscribers.delivered() - published_at
        publish_cpu = meter.read() - cpu
        await asyncio.sleep(0.5)  # anything extra would arrive now
        counts = await subscribers.counts()
    publisher.close()
    if counts["ended"] or counts["other"]:
        raise RuntimeError(f"{counts['ended']} streams ended ({counts['end_reasons']}), {counts['other']} other")
    rss_per_subscription = (rss_after - rss_before) / shape.subscriptions
    return Figures(
        shape, open_seconds, open_cpu, rss_per_subscription, idle, publish_to_last, publish_cpu, counts["items"],
        samples,
    )  # fmt: skip


async def opening(
    subscribers: SubscriberProcesses, meter: Meter, shape: Shape, rss_before: int
) -> tuple[float, Cpu, tuple[OpenSample, ...]]:
    """Open every stream; (seconds until the last had its first heartbeat, CPU meanwhile, readings every
    `OPEN_SAMPLE_S` for the plot)."""
    started, cpu = time.monotonic(), meter.read()
    subscribers.open()
    opened = asyncio.ensure_future(subscribers.opened())
    samples = [OpenSample(0.0, 0, 0, 0.0)]
    try:
        async with asyncio.timeout(open_timeout(shape)):
            while not opened.done():
                await asyncio.wait((opened,), timeout=OPEN_SAMPLE_S)
                counts = await subscribers.counts()
                samples.append(
                    OpenSample(
                        time.monotonic() - started,
                        counts["opened"],
                        tree_rss_kib(meter.server) - rss_before,
                        cpu_seconds(meter.server) - cpu.server,
                    )
                )
            opened_at = opened.result()
    except TimeoutError:
        opened.cancel()
        raise RuntimeError(f"not every stream opened: {await subscribers.counts()}") from None
    return opened_at - started, meter.read() - cpu, tuple(samples)


async def idling(subscribers: SubscriberProcesses, meter: Meter, seconds: float) -> Idle:
    """Leave every stream idle for ``seconds``, reading the server's CPU each second."""
    subscribers.listen()
    counts, cpu, busy, wall = await subscribers.counts(), meter.read(), machine_busy_seconds(), time.monotonic()
    per_second, last, end = [], (wall, cpu.server), wall + seconds
    while (now := time.monotonic()) < end:
        await asyncio.sleep(min(1.0, end - now))
        reading = (time.monotonic(), cpu_seconds(meter.server))
        per_second.append((reading[1] - last[1]) / (reading[0] - last[0]))
        last = reading
    wall = time.monotonic() - wall
    used = meter.read() - cpu
    other = machine_busy_seconds() - busy - used.server - used.client - used.redis
    after = await subscribers.counts()
    return Idle(
        wall, used, after["heartbeats"] - counts["heartbeats"], after["heard"], max(0.0, other / wall),
        tuple(per_second),
    )  # fmt: skip


@contextmanager
def redis_server(shape: Shape) -> Iterator[tuple[str | None, int | None]]:
    """(URL, pid) of a fresh redis-server for the machine step; (None, None) for the process step."""
    if not shape.machine:
        yield None, None
        return
    with tempfile.TemporaryDirectory(prefix="bench-scale-redis-") as directory:
        process, port = start_redis(Path(directory))
        try:
            yield f"redis://{HOST}:{port}", process.pid
        finally:
            process.terminate()
            process.wait(10)


def run(shape: Shape) -> Figures:
    with tempfile.TemporaryDirectory() as data_dir, redis_server(shape) as (redis_url, redis_pid):
        port = free_port(HOST)
        command = server_command(port, data_dir, shape, redis_url)
        with running(command, re.compile("listening on grpc://"), ready_lines=shape.workers) as process:
            return asyncio.run(measure(port, process.pid, redis_pid, shape))


def _verdict(ok: bool) -> str:
    return "pass" if ok else "**miss**"


def _table(rows: list[tuple[str, str, str]]) -> str:
    return "\n".join(f"| {name} | {value} | {goal} |" for name, value, goal in rows)


def _publish_row(f: Figures, goal: float | None) -> tuple[str, str, str]:
    name = f"publish to {f.shape.topics:,} topics, to the last subscriber (s)"
    if f.publish_to_last_seconds is None:
        return name, "not all delivered", "**miss**"
    value = f"{f.publish_to_last_seconds:.3f}"
    if goal is None:
        return name, value, "recorded"
    return name, value, f"≤ {goal:g} — {_verdict(f.publish_to_last_seconds <= goal)}"


def _notes(f: Figures) -> str:
    s = f.shape

    def redis(cpu: Cpu) -> str:
        return f", Redis {cpu.redis:.2f}" if s.machine else ""

    return f"""\
- Idle: {f.idle.seconds:.0f} s with every stream idle; the client received {f.idle.heartbeats / f.idle.seconds:,.0f} \
heartbeats/s (one per stream per {HEARTBEAT_INTERVAL:g} s is {s.subscriptions / HEARTBEAT_INTERVAL:,.0f}/s) and \
{f.idle.heard:,} of the {s.subscriptions:,} streams had at least one. Other processes used \
{f.idle.other_cores:.2f} cores meanwhile.
- Publish: one 64-byte publish to each topic at once; {f.items:,} items for {s.subscriptions:,} subscriptions \
({f.items - s.subscriptions:+,} lost or extra).
- CPU seconds while opening: server {f.open_cpu.server:.2f}, load generator {f.open_cpu.client:.2f}\
{redis(f.open_cpu)}; idle: server {f.idle.cpu.server:.2f}, load generator {f.idle.cpu.client:.2f}\
{redis(f.idle.cpu)}; from the first publish to the last delivery: server {f.publish_cpu.server:.2f}, load \
generator {f.publish_cpu.client:.2f}{redis(f.publish_cpu)}. Where the load generator's figure is near the wall \
time, its client, not the server, set the pace.
"""


def _setup(f: Figures, command: str) -> str:
    s = f.shape
    clients = (
        "one load-generator process" if s.client_processes == 1 else f"{s.client_processes} load-generator processes"
    )
    return f"""`{command}` on {platform.machine()} with {os.cpu_count()} cores, Python \
{platform.python_version()}, {datetime.date.today().isoformat()}: {s.subscriptions:,} Subscribe streams over \
{s.connections:,} connections from {clients} with a raw-frame HTTP/2 client (`bench/_rawh2.py`) and one more \
connection publishing, {s.topics:,} topics."""


def report(f: Figures) -> str:
    s = f.shape
    command = "python bench/scale.py" + (" --machine" if s.machine else "") + (" --quick" if s.quick else "")
    if s.machine:
        return report_machine(f, command)
    rss, idle = f.rss_kib_per_subscription, f.idle.server_cores
    rows = [
        ("RSS per subscription (KiB)", f"{rss:.2f}", f"≤ 5 — {_verdict(rss <= 5)}"),
        (f"time to open {s.subscriptions:,} (s)", f"{f.open_seconds:.1f}", f"≤ 10 — {_verdict(f.open_seconds <= 10)}"),
        ("idle server CPU (% of a core)", f"{100 * idle:.1f}", f"≤ 5 — {_verdict(idle <= 0.05)}"),
        _publish_row(f, 0.5),
    ]  # fmt: skip
    return f"""## Scale: {s.subscriptions:,} idle subscriptions in one process

{_setup(f, command)} One tidings process (memory engine, h2 transport, `--heartbeat-interval {HEARTBEAT_INTERVAL:g}`, \
`--max-subscriptions-per-cache` raised to fit).

| measure | figure | target |
| --- | ---: | --- |
{_table(rows)}

{_notes(f)}"""


def report_machine(f: Figures, command: str) -> str:
    s = f.shape
    lost = s.subscriptions - f.items
    rows = [
        ("subscriptions opened", f"{s.subscriptions:,}", "all — pass"),  # measure() raises unless all opened
        (
            "streams with a heartbeat while idle",
            f"{f.idle.heard:,}",
            f"all — {_verdict(f.idle.heard == s.subscriptions)}",
        ),
        ("items lost (or extra, negative)", f"{lost:,}", f"0 — {_verdict(lost == 0)}"),
        ("RSS per subscription (KiB)", f"{f.rss_kib_per_subscription:.2f}", "recorded"),
        (f"time to open {s.subscriptions:,} (s)", f"{f.open_seconds:.1f}", "recorded"),
        (f"idle server CPU, {s.workers} workers (% of a core)", f"{100 * f.idle.server_cores:.1f}", "recorded"),
        _publish_row(f, None),
    ]
    return f"""## Scale: {s.subscriptions:,} subscriptions on one machine, `--workers {s.workers}` on Redis

{_setup(f, command)} One tidings server with `--workers {s.workers}` on the Redis engine (its own redis-server, \
no persistence), h2 transport, `--heartbeat-interval {HEARTBEAT_INTERVAL:g}`; `--max-subscriptions-per-cache`, \
`--max-connections` and `--max-connections-per-address` raised to fit (each worker counts its own). RSS and CPU \
are the supervisor's and the workers' summed; Redis's CPU is shown apart. Each load-generator process keeps at \
most {s.open_window:,} streams waiting for their first heartbeat (`--open-window`; 0: no limit): with all \
requests at once, a worker's loop turn, decoding 4 KiB of every connection's backlog, outlasted \
`--request-timeout` and requests whose HEADERS and DATA fell in different turns ended DEADLINE_EXCEEDED.

| measure | figure | target |
| --- | ---: | --- |
{_table(rows)}

{_notes(f)}"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--machine", action="store_true", help="the machine step: --workers 2 on Redis, 1,000,000")
    parser.add_argument("--subscriptions", type=int)
    parser.add_argument("--connections", type=int)
    parser.add_argument("--topics", type=int)
    parser.add_argument("--client-processes", type=int, help="load-generator processes holding the streams")
    parser.add_argument("--idle-seconds", type=float)
    parser.add_argument(
        "--open-window",
        type=int,
        help="streams per load-generator process waiting for their first heartbeat at a time, 0: no limit "
        "(default: 0; --machine: 10,000)",
    )
    parser.add_argument("--quick", action="store_true", help="10,000 subscriptions (the machine step: 20,000)")
    parser.add_argument("--write", type=Path, metavar="FILE", help="replace the bench:scale section of FILE")
    return parser.parse_args(argv)


def shape_of(options: argparse.Namespace) -> Shape:
    """The run's shape: the step's, the quick one's, then what the options set."""
    # (subscriptions, connections, topics, workers, client processes, idle seconds, open window)
    defaults: dict[tuple[bool, bool], tuple[int, int, int, int, int, float, int]] = {
        (False, False): (100_000, 500, 100, 1, 1, 3 * HEARTBEAT_INTERVAL, 0),
        (False, True): (10_000, 50, 100, 1, 1, 2 * HEARTBEAT_INTERVAL, 0),
        (True, False): (1_000_000, 5_000, 1_000, 2, 2, 3 * HEARTBEAT_INTERVAL, MACHINE_OPEN_WINDOW),
        (True, True): (20_000, 100, 1_000, 2, 2, 2 * HEARTBEAT_INTERVAL, MACHINE_OPEN_WINDOW),
    }
    subscriptions, connections, topics, workers, clients, idle, window = defaults[options.machine, options.quick]
    given: dict[str, Any] = {
        "subscriptions": options.subscriptions,
        "connections": options.connections,
        "topics": options.topics,
        "client_processes": options.client_processes,
        "idle_seconds": options.idle_seconds,
        "open_window": options.open_window,
    }
    shape = Shape(options.machine, subscriptions, connections, topics, workers, clients, idle, options.quick, window)
    return dataclasses.replace(shape, **{key: value for key, value in given.items() if value is not None})


def main() -> None:
    options = parse_args()
    figures = run(shape_of(options))
    text = report(figures)
    print(text)
    if options.write:
        image = "scale-machine.png" if options.machine else "scale.png"
        text += f"\n![streams open over time, RSS against streams open, idle CPU per second]({image})\n"
        write_section(options.write, "scale-machine" if options.machine else "scale", text)
        draw_scale(
            [(sample.seconds, sample.opened, sample.rss_kib) for sample in figures.opening],
            figures.idle.per_second,
            options.write.parent / image,
            f"{figures.shape.subscriptions:,} subscriptions"
            + (f", --workers {figures.shape.workers} on Redis" if options.machine else ", one process"),
            rss_target_kib=None if options.machine else 5.0,
            idle_target=None if options.machine else 0.05,
        )


if __name__ == "__main__":
    main()
