"""Soak: minutes of mixed publish/subscribe/churn over gRPC, HTTP and SSE, with slow and stuck readers.

Starts a ``tidings server`` and, for ``--minutes`` (default 10), keeps up:

- publishers: gRPC on ``--topics`` topics at ``--rate`` messages/s each, and HTTP POSTs on one more topic;
- fast readers, each checking that every item is the one after the last (no gap, no repeat): our SDK's
  subscriptions (which resubscribe by themselves), SSE streams, and HTTP long-poll loops;
- slow readers (one item a second: they fall behind the retention buffer and get discontinuities, as they
  should) and stuck readers (gRPC and SSE streams that are never read);
- churn: subscriptions and SSE streams opened and closed, one-off HTTP connections.

Every 5 s it samples the server's RSS, open file descriptors and CPU. It fails (exit 1) on any gap seen by a
fast reader, any unexpected error, RSS growth after the warm-up beyond ``--max-rss-growth`` MiB, or file
descriptors growing beyond the churn in flight. ``--write docs/performance.md`` replaces the soak section and
draws RSS and descriptors over time into ``docs/soak.png``.

    python bench/soak.py --minutes 10 --write docs/performance.md
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import grpc.aio
import httpx
from _proc import cpu_seconds, free_port, rss_kib
from _report import write_section
from momento_wire_types import cachepubsub_pb2 as pb
from momento_wire_types import cachepubsub_pb2_grpc

from tidings import TopicClientAsync, TopicSubscribe, TopicSubscriptionItem

CACHE = "soak"
SAMPLE_EVERY = 5.0
_LISTENING = re.compile(r"listening on (grpc|http)://[^\s]+:(\d+)")


@dataclass
class Tally:
    """What the readers saw."""

    delivered: Counter[str] = field(default_factory=Counter)
    gaps: list[str] = field(default_factory=list)
    discontinuities_to_slow_readers: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    churned: int = 0
    published: int = 0


class Order:
    """Checks that a reader's items follow each other: page changes only with a discontinuity."""

    def __init__(self, name: str, tally: Tally) -> None:
        self.name, self.tally = name, tally
        self.page = self.last = 0

    def item(self, page: int, number: int, transport: str) -> None:
        if self.last and (page != self.page or number != self.last + 1):
            self.tally.gaps.append(f"{self.name}: {self.page}:{self.last} then {page}:{number}")
        self.page, self.last = page, number
        self.tally.delivered[transport] += 1

    def skip(self, page: int, new_sequence: int) -> None:
        self.tally.gaps.append(f"{self.name}: discontinuity to {page}:{new_sequence} after {self.page}:{self.last}")
        self.page, self.last = page, new_sequence


def start_server(data_dir: str) -> tuple[subprocess.Popen[str], int, int]:
    http_port = str(free_port())  # --http-port 0 would disable HTTP
    command = [sys.executable, "-m", "tidings", "server", "--port", "0", "--http-port", http_port]
    command += ["--data-dir", data_dir, "--create-cache", CACHE]
    command += ["--heartbeat-interval", "2", "--http-long-poll-timeout", "5"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    ports: dict[str, int] = {}
    while len(ports) < 2:
        line = process.stderr.readline()
        if not line:
            raise RuntimeError("the server exited before it listened")
        match = _LISTENING.search(line)
        if match:
            ports[match.group(1)] = int(match.group(2))
    return process, ports["grpc"], ports["http"]


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def publisher(stub: cachepubsub_pb2_grpc.PubsubStub, topic: str, rate: float, tally: Tally) -> None:
    interval = 1.0 / rate
    next_at = time.monotonic()
    number = 0
    while True:
        number += 1
        request = pb._PublishRequest(cache_name=CACHE, topic=topic, value=pb._TopicValue(text=f"{topic}-{number}"))
        try:
            await stub.Publish(request, timeout=10)
            tally.published += 1
        except grpc.aio.AioRpcError as error:
            tally.errors[f"publish {error.code().name}"] += 1
        next_at += interval
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))


async def http_publisher(http: httpx.AsyncClient, topic: str, rate: float, tally: Tally) -> None:
    while True:
        answer = await http.post(f"/topics/{CACHE}/{topic}", content="x" * 64, headers={"content-type": "text/plain"})
        if answer.status_code == 204:
            tally.published += 1
        else:
            tally.errors[f"http publish {answer.status_code}"] += 1
        await asyncio.sleep(1.0 / rate)


async def sdk_reader(client: TopicClientAsync, topic: str, name: str, tally: Tally) -> None:
    order = Order(name, tally)
    subscription = await client.subscribe(CACHE, topic, include_discontinuities=True)
    assert isinstance(subscription, TopicSubscribe.SubscriptionAsync), subscription
    async for item in subscription:
        match item:
            case TopicSubscriptionItem.Text():
                order.item(item.sequence_page, item.sequence_number, "grpc")
            case TopicSubscriptionItem.Discontinuity():
                order.skip(item.new_sequence_page, item.new_sequence_number)
            case TopicSubscriptionItem.Error():
                tally.errors[f"sdk subscription {item.error_code.name}"] += 1
                return


async def sse_reader(http: httpx.AsyncClient, topic: str, name: str, tally: Tally) -> None:
    order = Order(name, tally)
    async with http.stream("GET", f"/topics/{CACHE}/{topic}/events") as stream:
        event = ""
        async for line in stream.aiter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event in ("item", "discontinuity"):
                data = json.loads(line[6:])
                if event == "item":
                    order.item(data["sequence_page"], data["topic_sequence_number"], "sse")
                else:
                    order.skip(data["new_sequence_page"], data["new_topic_sequence"])


async def poll_reader(http: httpx.AsyncClient, topic: str, name: str, tally: Tally) -> None:
    order = Order(name, tally)
    position, page = 0, 0
    while True:
        answer = await http.get(f"/topics/{CACHE}/{topic}", params={"sequence_number": position, "sequence_page": page})
        if answer.status_code != 200:
            tally.errors[f"long-poll {answer.status_code}"] += 1
            await asyncio.sleep(1)
            continue
        for entry in answer.json()["items"]:
            if "item" in entry:
                item = entry["item"]
                order.item(item["sequence_page"], item["topic_sequence_number"], "long-poll")
                position, page = item["topic_sequence_number"] + 1, item["sequence_page"]
            else:
                gap = entry["discontinuity"]
                order.skip(gap["new_sequence_page"], gap["new_topic_sequence"])
                position, page = gap["new_topic_sequence"] + 1, gap["new_sequence_page"]


async def slow_reader(stub: cachepubsub_pb2_grpc.PubsubStub, topic: str, tally: Tally) -> None:
    call = stub.Subscribe(pb._SubscriptionRequest(cache_name=CACHE, topic=topic))
    while True:
        message = await call.read()
        if message is grpc.aio.EOF:
            tally.errors["slow reader stream ended"] += 1
            return
        if message.WhichOneof("kind") == "discontinuity":
            tally.discontinuities_to_slow_readers += 1
        await asyncio.sleep(1.0)


async def churn(stub: cachepubsub_pb2_grpc.PubsubStub, http_url: str, topics: list[str], tally: Tally) -> None:
    turn = 0
    while True:
        turn += 1
        topic = topics[turn % len(topics)]
        call = stub.Subscribe(pb._SubscriptionRequest(cache_name=CACHE, topic=topic))
        try:
            await asyncio.wait_for(call.read(), 10)
        except (grpc.aio.AioRpcError, TimeoutError) as error:
            tally.errors[f"churn subscribe {type(error).__name__}"] += 1
        call.cancel()
        async with (
            httpx.AsyncClient(base_url=http_url, timeout=10) as once,
            once.stream("GET", f"/topics/{CACHE}/{topic}/events") as stream,
        ):
            async for _ in stream.aiter_lines():
                break  # the first line of the heartbeat: then hang up
        tally.churned += 1
        await asyncio.sleep(0.1)


async def soak(args: argparse.Namespace) -> dict[str, object]:
    tally = Tally()
    with tempfile.TemporaryDirectory(prefix="tidings-soak-") as data_dir:
        process, grpc_port, http_port = start_server(data_dir)
        # Keep reading the log so that the pipe never fills.
        drain = asyncio.create_task(asyncio.to_thread(lambda: process.stderr and process.stderr.read()))
        samples: list[tuple[float, int, int, float]] = []
        try:
            samples = await _run(args, process.pid, f"127.0.0.1:{grpc_port}", f"http://127.0.0.1:{http_port}", tally)
        finally:
            process.send_signal(signal.SIGTERM)
            await asyncio.to_thread(process.wait, 30)
            await drain
    return _verdict(args, tally, samples)


async def _run(
    args: argparse.Namespace, pid: int, endpoint: str, http_url: str, tally: Tally
) -> list[tuple[float, int, int, float]]:
    topics = [f"t{i}" for i in range(args.topics)]
    tasks: list[asyncio.Task[None]] = []
    samples: list[tuple[float, int, int, float]] = []
    async with (
        grpc.aio.insecure_channel(endpoint) as publish_channel,
        grpc.aio.insecure_channel(endpoint) as read_channel,
        TopicClientAsync(endpoint) as client,
        httpx.AsyncClient(base_url=http_url, timeout=30, limits=httpx.Limits(max_connections=200)) as http,
    ):
        publish_stub = cachepubsub_pb2_grpc.PubsubStub(publish_channel)
        read_stub = cachepubsub_pb2_grpc.PubsubStub(read_channel)
        stuck = [read_stub.Subscribe(pb._SubscriptionRequest(cache_name=CACHE, topic=t)) for t in topics]
        stuck_sse = [http.stream("GET", f"/topics/{CACHE}/{t}/events") for t in topics]
        for context in stuck_sse:
            await context.__aenter__()  # opened, never read
        for i, topic in enumerate(topics):
            tasks.append(asyncio.create_task(sdk_reader(client, topic, f"sdk-{i}", tally)))
            tasks.append(asyncio.create_task(sdk_reader(client, topic, f"sdk-{i}b", tally)))
            tasks.append(asyncio.create_task(sse_reader(http, topic, f"sse-{i}", tally)))
            tasks.append(asyncio.create_task(poll_reader(http, topic, f"poll-{i}", tally)))
            tasks.append(asyncio.create_task(slow_reader(read_stub, topic, tally)))
        tasks.append(asyncio.create_task(poll_reader(http, "http", "poll-http", tally)))
        await asyncio.sleep(1.0)  # readers subscribed before the first publish: they see every message
        tasks += [asyncio.create_task(publisher(publish_stub, t, args.rate, tally)) for t in topics]
        tasks.append(asyncio.create_task(http_publisher(http, "http", args.rate / 5, tally)))
        tasks.append(asyncio.create_task(churn(read_stub, http_url, topics, tally)))
        started = time.monotonic()
        end = started + args.minutes * 60
        while time.monotonic() < end:
            samples.append((time.monotonic() - started, rss_kib(pid), open_fds(pid), cpu_seconds(pid)))
            for task in tasks:
                if task.done() and not task.cancelled() and task.exception() is not None:
                    raise RuntimeError(f"a soak task failed: {task.exception()!r}")
            await asyncio.sleep(SAMPLE_EVERY)
        samples.append((time.monotonic() - started, rss_kib(pid), open_fds(pid), cpu_seconds(pid)))
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for call in stuck:
            call.cancel()
        for context in stuck_sse:
            with contextlib.suppress(Exception):
                await context.__aexit__(None, None, None)
    return samples


def _verdict(args: argparse.Namespace, tally: Tally, samples: list[tuple[float, int, int, float]]) -> dict[str, object]:
    warm = [s for s in samples if s[0] >= args.warmup]
    rss = [s[1] / 1024 for s in warm]
    fds = [s[2] for s in warm]
    seconds = samples[-1][0]
    report: dict[str, object] = {
        "minutes": round(seconds / 60, 1),
        "published": tally.published,
        "delivered": dict(tally.delivered),
        "gaps": len(tally.gaps),
        "gap_examples": tally.gaps[:5],
        "discontinuities_to_slow_readers": tally.discontinuities_to_slow_readers,
        "churned": tally.churned,
        "errors": dict(tally.errors),
        "rss_mib_after_warmup": round(rss[0], 1),
        "rss_mib_max": round(max(rss), 1),
        "rss_mib_last": round(rss[-1], 1),
        "fds_after_warmup": fds[0],
        "fds_min_max": [min(fds), max(fds)],
        "server_cpu_percent": round(100 * (samples[-1][3] - samples[0][3]) / seconds, 1),
        "samples": samples,
    }
    failures = []
    if tally.gaps:
        failures.append(f"{len(tally.gaps)} gaps seen by fast readers")
    if tally.errors:
        failures.append(f"errors: {dict(tally.errors)}")
    if rss[-1] - rss[0] > args.max_rss_growth:
        failures.append(f"RSS grew by {rss[-1] - rss[0]:.1f} MiB after the warm-up")
    if max(fds) - min(fds) > 16:
        failures.append(f"open descriptors ranged {min(fds)}..{max(fds)}")
    report["failures"] = failures
    return report


def _plot(samples: list[tuple[float, int, int, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [s[0] / 60 for s in samples]
    figure, rss_axis = plt.subplots(figsize=(8, 3.5))
    rss_axis.plot(minutes, [s[1] / 1024 for s in samples], color="tab:blue")
    rss_axis.set_xlabel("minutes")
    rss_axis.set_ylabel("server RSS (MiB)", color="tab:blue")
    rss_axis.set_ylim(0, max(s[1] for s in samples) / 1024 * 1.3)
    fd_axis = rss_axis.twinx()
    fd_axis.plot(minutes, [s[2] for s in samples], color="tab:orange")
    fd_axis.set_ylabel("open file descriptors", color="tab:orange")
    fd_axis.set_ylim(0, max(s[2] for s in samples) * 1.8)
    rss_axis.set_title("Soak: server RSS and open descriptors under mixed load")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _section(report: dict[str, object], args: argparse.Namespace, load: str) -> str:
    delivered = report["delivered"]
    assert isinstance(delivered, dict)
    grpc_count, sse_count, poll_count = (f"{delivered.get(name, 0):,}" for name in ("grpc", "sse", "long-poll"))
    slow = report["discontinuities_to_slow_readers"]
    rss = f"{report['rss_mib_after_warmup']} / {report['rss_mib_max']} / {report['rss_mib_last']}"
    verdict = "passed" if not report["failures"] else f"FAILED: {'; '.join(map(str, report['failures']))}"
    return f"""## Soak (`make soak`)

{report["minutes"]} minutes of mixed load on one server (`bench/soak.py`, {args.topics} topics at {args.rate:g}
messages/s each over gRPC plus HTTP publishes; per topic two SDK subscriptions, an SSE stream and a long-poll
loop checking order, a slow reader (1 item/s) and stuck gRPC and SSE streams; subscribe/SSE churn). Load
average at the start: {load}. Result: **{verdict}**.

| figure | value |
| --- | --- |
| messages published | {report["published"]:,} |
| deliveries checked (gRPC SDK / SSE / long-poll) | {grpc_count} / {sse_count} / {poll_count} |
| gaps or repeats seen by fast readers | {report["gaps"]} |
| discontinuities to slow readers (once behind retention plus what their connection buffers) | {slow} |
| churned subscriptions + SSE streams | {report["churned"]:,} |
| server RSS after warm-up / max / at the end (MiB) | {rss} |
| open descriptors after warm-up / min..max | {report["fds_after_warmup"]} / {report["fds_min_max"]} |
| server CPU (% of one core) | {report["server_cpu_percent"]} |

![server RSS and open descriptors over the soak](soak.png)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--topics", type=int, default=4)
    parser.add_argument("--rate", type=float, default=50.0, help="gRPC publishes per second per topic")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds before RSS and fds must be flat")
    parser.add_argument("--max-rss-growth", type=float, default=16.0, help="MiB allowed after the warm-up")
    parser.add_argument("--write", type=Path, help="replace the soak section of this markdown file")
    args = parser.parse_args()
    args.warmup = min(args.warmup, args.minutes * 60 / 4)
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    report = asyncio.run(soak(args))
    samples = report.pop("samples")
    print(json.dumps(report, indent=2))
    if args.write is not None:
        _plot(samples, args.write.parent / "soak.png")  # type: ignore[arg-type]
        write_section(args.write, "soak", _section(report, args, load))
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
