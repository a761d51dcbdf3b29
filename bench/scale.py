"""Scale of one server process: many idle subscriptions, what they cost, and how fast a publish reaches them all.

One tidings process (memory engine, h2 transport) and one load-generator process with its own lean HTTP/2
client (`bench/_h2client.py`: asyncio + ``h2``, no grpc-core):

1. **open**: ``--subscriptions`` Subscribe streams over ``--connections`` connections, spread over ``--topics``
   topics; timed from the first request to the last stream's first heartbeat;
2. **memory**: the server's RSS growth per subscription (RSS after opening them less RSS before);
3. **idle**: the server's CPU while every stream is idle for ``--idle-seconds`` (at least two heartbeat
   intervals: heartbeats are all it does), as a fraction of one core, and the heartbeats the client received;
4. **publish**: one publish to each topic at once; the time from the first publish until the last
   subscription received its message (every subscription must get exactly one).

The targets are issue 20's for one process and 100,000 subscriptions: RSS per subscription <= 5 KiB, opened in
<= 10 s, idle CPU <= 5% of a core, publish to the last subscriber <= 0.5 s. They are absolute figures on this
machine (2 cores), not ratios: there is no baseline that holds 100,000 subscriptions to compare with.

Usage::

    python bench/scale.py                                  # 100,000 subscriptions (~1 minute)
    python bench/scale.py --quick                          # 10,000, shorter idle window
    python bench/scale.py --write docs/performance.md      # also replace the bench:scale section
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from _h2client import H2Channel, OnMessage
from _proc import cpu_seconds, free_port, machine_busy_seconds, rss_kib, running
from _report import write_section
from momento_wire_types import cachepubsub_pb2 as pb

HOST = "127.0.0.1"
CACHE = "scale"
SUBSCRIBE = "/cache_client.pubsub.Pubsub/Subscribe"
PUBLISH = "/cache_client.pubsub.Pubsub/Publish"
HEARTBEAT_INTERVAL = 10.0  # the server's default
# The first byte of a SubscriptionItem on the wire tells its kind: field 1 (item), 2 (discontinuity), 3 (heartbeat).
ITEM, HEARTBEAT = 0x0A, 0x1A
METADATA = (("cache", CACHE),)


@dataclass
class Streams:
    """What the client saw of its subscriptions."""

    total: int
    opened: int = 0
    heartbeats: int = 0
    items: int = 0
    other: int = 0
    ended: list[str] = field(default_factory=list)
    all_open: asyncio.Event = field(default_factory=asyncio.Event)
    all_delivered: asyncio.Event = field(default_factory=asyncio.Event)
    last_item_at: float = 0.0
    _seen: bytearray = field(default_factory=bytearray)

    def __post_init__(self) -> None:
        self._seen = bytearray(self.total)

    def handler(self, index: int) -> OnMessage:
        """The on_message callback of subscription ``index``."""

        def on_message(now_ns: int, message: bytes) -> None:
            kind = message[0] if message else 0
            if kind == HEARTBEAT:
                self.heartbeats += 1
                if not self._seen[index]:
                    self._seen[index] = 1
                    self.opened += 1
                    if self.opened == self.total:
                        self.all_open.set()
            elif kind == ITEM:
                self.items += 1
                self.last_item_at = now_ns / 1e9
                if self.items == self.total:
                    self.all_delivered.set()
            else:
                self.other += 1

        return on_message

    def on_end(self, status: int, message: str) -> None:
        self.ended.append(f"{status}: {message}")


@dataclass
class Figures:
    subscriptions: int
    connections: int
    topics: int
    open_seconds: float
    rss_kib_per_subscription: float
    idle_cores: float
    idle_seconds: float
    heartbeats_per_second: float
    publish_to_last_seconds: float
    lost_or_extra: int
    other_cores: float
    open_cpu: tuple[float, float]  # CPU seconds of (the server, the load generator) while opening
    publish_cpu: tuple[float, float]  # ... from the first publish until the last delivery (and a little after)


def server_command(port: int, data_dir: str, subscriptions: int) -> list[str]:
    return [
        sys.executable, "-m", "tidings", "server", "--host", HOST, "--port", str(port), "--http-port", "0",
        "--data-dir", data_dir, "--create-cache", CACHE, "--heartbeat-interval", str(HEARTBEAT_INTERVAL),
        "--max-subscriptions-per-cache", str(subscriptions + 1000),
    ]  # fmt: skip


async def measure(port: int, pid: int, options: argparse.Namespace) -> Figures:
    total, connections, topics = options.subscriptions, options.connections, options.topics
    address = f"{HOST}:{port}"
    streams = Streams(total)
    channels = [await H2Channel.connect(address) for _ in range(connections)]
    requests = [
        pb._SubscriptionRequest(cache_name=CACHE, topic=f"t{topic}").SerializeToString() for topic in range(topics)
    ]
    await asyncio.sleep(1.0)  # the connections settle before the baseline RSS
    rss_before = rss_kib(pid)
    started, server_cpu, client_cpu = time.monotonic(), cpu_seconds(pid), cpu_seconds_self()
    for index in range(total):
        channels[index % connections].start_call(
            SUBSCRIBE, requests[index % topics], METADATA, streams.handler(index), streams.on_end
        )
        if index % 1000 == 999:
            await asyncio.sleep(0)  # let the client write and read as it goes
    await asyncio.wait_for(streams.all_open.wait(), 120)
    open_seconds = time.monotonic() - started
    open_cpu = (cpu_seconds(pid) - server_cpu, cpu_seconds_self() - client_cpu)
    await asyncio.sleep(2.0)
    rss_after = rss_kib(pid)

    heartbeats, cpu, busy, wall = streams.heartbeats, cpu_seconds(pid), machine_busy_seconds(), time.monotonic()
    own = cpu_seconds_self()
    await asyncio.sleep(options.idle_seconds)
    wall = time.monotonic() - wall
    idle_cpu = cpu_seconds(pid) - cpu
    other = machine_busy_seconds() - busy - idle_cpu - (cpu_seconds_self() - own)
    heartbeats = streams.heartbeats - heartbeats

    publisher = channels[0]
    published_at, server_cpu, client_cpu = time.monotonic(), cpu_seconds(pid), cpu_seconds_self()
    await asyncio.gather(
        *(
            publisher.unary(
                PUBLISH,
                pb._PublishRequest(
                    cache_name=CACHE, topic=f"t{topic}", value=pb._TopicValue(text="x" * 64)
                ).SerializeToString(),
                METADATA,
            )
            for topic in range(topics)
        )
    )
    await asyncio.wait_for(streams.all_delivered.wait(), 60)
    publish_to_last = streams.last_item_at - published_at
    publish_cpu = (cpu_seconds(pid) - server_cpu, cpu_seconds_self() - client_cpu)
    await asyncio.sleep(0.5)  # anything extra would arrive now
    for channel in channels:
        channel.close()
    if streams.ended or streams.other:
        raise RuntimeError(f"streams ended or got discontinuities: {streams.ended[:3]}, {streams.other} other")
    return Figures(
        total,
        connections,
        topics,
        open_seconds,
        (rss_after - rss_before) / total,
        idle_cpu / wall,
        wall,
        heartbeats / wall,
        publish_to_last,
        streams.items - total,
        max(0.0, other / wall),
        open_cpu,
        publish_cpu,
    )


def cpu_seconds_self() -> float:
    """This process's CPU time (the load generator's)."""
    times = os.times()
    return float(times.user + times.system)


def run(options: argparse.Namespace) -> Figures:
    with tempfile.TemporaryDirectory() as data_dir:
        port = free_port(HOST)
        command = server_command(port, data_dir, options.subscriptions)
        with running(command, re.compile("listening on grpc://")) as process:
            return asyncio.run(measure(port, process.pid, options))


def _verdict(ok: bool) -> str:
    return "pass" if ok else "**miss**"


def report(figures: Figures, options: argparse.Namespace) -> str:
    f = figures
    rows = [
        ("RSS per subscription (KiB)", f"{f.rss_kib_per_subscription:.2f}", "≤ 5", f.rss_kib_per_subscription <= 5),
        (f"time to open {f.subscriptions:,} (s)", f"{f.open_seconds:.1f}", "≤ 10", f.open_seconds <= 10),
        ("idle server CPU (% of a core)", f"{100 * f.idle_cores:.1f}", "≤ 5", f.idle_cores <= 0.05),
        (
            f"publish to {f.topics} topics, to the last subscriber (s)",
            f"{f.publish_to_last_seconds:.3f}",
            "≤ 0.5",
            f.publish_to_last_seconds <= 0.5,
        ),
    ]
    table = "\n".join(f"| {name} | {value} | {goal} — {_verdict(ok)} |" for name, value, goal, ok in rows)
    today = datetime.date.today().isoformat()
    return f"""## Scale: {f.subscriptions:,} idle subscriptions in one process

`python bench/scale.py{" --quick" if options.quick else ""}` on {platform.machine()} with 2 cores, Python \
{platform.python_version()}, {today}: one tidings process (memory engine, h2 transport, `--heartbeat-interval \
{HEARTBEAT_INTERVAL:g}`, `--max-subscriptions-per-cache` raised to fit), {f.subscriptions:,} Subscribe streams \
over {f.connections} connections from one load-generator process with its own HTTP/2 client \
(`bench/_h2client.py`), {f.topics} topics.

| measure | figure | target |
| --- | ---: | --- |
{table}

- Idle: {f.idle_seconds:.0f} s with every stream idle; the client received {f.heartbeats_per_second:,.0f} \
heartbeats/s (one per stream per {HEARTBEAT_INTERVAL:g} s is {f.subscriptions / HEARTBEAT_INTERVAL:,.0f}/s). \
Other processes used {f.other_cores:.2f} cores meanwhile.
- Publish: one 64-byte publish to each topic at once; every subscription got exactly one item \
({f.lost_or_extra} lost or extra).
- CPU seconds while opening: server {f.open_cpu[0]:.1f}, load generator {f.open_cpu[1]:.1f}; from the first \
publish to the last delivery: server {f.publish_cpu[0]:.2f}, load generator {f.publish_cpu[1]:.2f}. Where the \
load generator's figure is near the wall time, its client (Python and `h2`), not the server, set the pace.
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscriptions", type=int, default=100_000)
    parser.add_argument("--connections", type=int, default=500)
    parser.add_argument("--topics", type=int, default=100)
    parser.add_argument("--idle-seconds", type=float, default=3 * HEARTBEAT_INTERVAL)
    parser.add_argument("--quick", action="store_true", help="10,000 subscriptions over 50 connections")
    parser.add_argument("--write", type=Path, metavar="FILE", help="replace the bench:scale section of FILE")
    options = parser.parse_args(argv)
    if options.quick:
        options.subscriptions, options.connections, options.idle_seconds = 10_000, 50, 2 * HEARTBEAT_INTERVAL
    return options


def main() -> None:
    options = parse_args()
    figures = run(options)
    text = report(figures, options)
    print(text)
    if options.write:
        write_section(options.write, "scale", text)


if __name__ == "__main__":
    main()
