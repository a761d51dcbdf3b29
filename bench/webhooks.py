"""Benchmark webhook deliveries against a plain httpx loop, what they cost the server, and a receiver outage.

- **deliveries**: messages/s that reach a local do-nothing receiver (`_webhook_receiver`, in its own process,
  which checks each webhook's sequence numbers) through 1 and through 10 webhooks of one topic, against the
  floor: the same receiver driven by as many plain httpx loops (one ``AsyncClient``, each loop POSTing a signed
  event of the same size and waiting for the answer, as a webhook does), in this process; and through 50
  webhooks on 50 topics, against the same publishes without webhooks.
- **server CPU per delivery**: the server's CPU over a run less the same publishes' without webhooks, per
  delivery (10 webhooks of one topic; 50 webhooks on 50 topics).
- **outage**: 50 webhooks on 50 topics; the receiver is stopped for ``--outage`` seconds (20) while each topic
  gets 20 messages a second, then restarted on the same port: when deliveries resume, and how fast the backlog
  is delivered, with no loss, duplicate or reorder.

Usage::

    python bench/webhooks.py                              # 3 rounds, 2,000 messages per scenario, 20 s outage
    python bench/webhooks.py --quick                      # 1 round, 300 messages, 3 s outage
    python bench/webhooks.py --write docs/performance.md  # also replace the bench:webhooks section
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import datetime
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from _client import PUBLISH
from _h2client import H2Channel
from _proc import free_port, running
from _report import write_section
from momento_wire_types import cachepubsub_pb2

from tidings import PutWebhook, TopicClientAsync
from tidings.webhooks import SIGNATURE_HEADER, sign

HOST = "127.0.0.1"
CACHE = "bench"
TOPIC = "events"
PAYLOAD = "x" * 64
PUBLISHERS = 64  # publishes in flight
SPREAD = 50  # webhooks on as many topics
OUTAGE_RATE = 20  # messages per second per topic while the receiver is down
_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time ``pid`` has used, from /proc (Linux)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


@contextmanager
def tidings_server(data_dir: str) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """tidings on loopback with retention for every message of a run; yields the process and its gRPC port."""
    port = free_port(HOST)
    command = [
        sys.executable, "-m", "tidings", "server", "--host", HOST, "--port", str(port), "--http-port", "0",
        "--data-dir", data_dir, "--create-cache", CACHE, "--retention-messages", "100000",
        "--webhook-timeout", "30",  # a held receiver (`backlog_run`) answers late
    ]  # fmt: skip
    with running(command, re.compile("listening on grpc://")) as process:
        yield process, port


@contextmanager
def receiver(port: int | None = None) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """The do-nothing receiver (`_webhook_receiver`) in its own process, on ``port`` or a free one; yields it and
    its port."""
    port = port or free_port(HOST)
    command = [sys.executable, str(Path(__file__).resolve()), "--serve-receiver", str(port)]
    with running(command, re.compile("receiver listening")) as process:
        yield process, port


def serve_receiver(port: int) -> None:
    """Run the receiver until killed."""
    import uvloop
    from _webhook_receiver import serve

    uvloop.run(serve(HOST, port))


async def _received(client: httpx.AsyncClient, port: int, at_least: int = 0) -> int:
    """The receiver's count of POSTs, once it is at least ``at_least``."""
    response = await client.get(f"http://{HOST}:{port}/count", params={"at_least": at_least}, timeout=600)
    count: int = response.json()["count"]
    return count


@dataclass
class Run:
    """One measured run: deliveries per second, the server's CPU over the run, and what the receiver saw."""

    deliveries: int
    deliveries_per_second: float
    server_cpu: float
    published: int
    faults: int = 0  # duplicates, gaps and missing deliveries over the run's paths


async def _put_webhooks(
    topics: TopicClientAsync, receiver_port: int, run: str, names: list[str], per_topic: int
) -> list[str]:
    hooks = []
    for t, topic in enumerate(names):
        for n in range(per_topic):
            hook = f"{run}-{t}-{n}"
            url = f"http://{HOST}:{receiver_port}/hook/{hook}"
            assert isinstance(await topics.put_webhook(CACHE, hook, topic, url), PutWebhook.Success)
            hooks.append(hook)
    return hooks


async def _publish(grpc_port: int, names: list[str], messages: int, pace: float = 0.0) -> int:
    """``messages`` per topic, by `PUBLISHERS` publishers taking the topics in turn on one connection of the
    benchmark's lean gRPC client (``_h2client``: the SDK's grpc.aio would take a core of its own on this
    machine); ``pace``: seconds between one publisher's publishes (0: as fast as they go)."""
    requests = {topic: _publish_request(topic) for topic in names}
    queue = [requests[topic] for _ in range(messages) for topic in names]
    channel = await H2Channel.connect(f"{HOST}:{grpc_port}")

    async def publisher(share: list[bytes]) -> None:
        for request in share:
            await channel.unary(PUBLISH, request, ())
            if pace:
                await asyncio.sleep(pace)

    try:
        await asyncio.gather(*(publisher(queue[n::PUBLISHERS]) for n in range(PUBLISHERS)))
    finally:
        channel.close()
        await channel.closed
    return len(queue)


def _publish_request(topic: str) -> bytes:
    value = cachepubsub_pb2._TopicValue(text=PAYLOAD)
    return cachepubsub_pb2._PublishRequest(cache_name=CACHE, topic=topic, value=value).SerializeToString()


def _faults(state: dict[str, Any], hooks: list[str], expected: int) -> int:
    """Duplicates, gaps and missing deliveries of ``hooks``' paths, each of which should have ``expected``."""
    faults = 0
    for hook in hooks:
        first, last, count, duplicates, gaps, _ = state["paths"].get(f"/hook/{hook}", [1, 0, 0, 0, 0, 0.0])
        faults += duplicates + gaps + abs(expected - count) + abs(expected - (last - first + 1))
    return faults


async def webhook_run(
    grpc_port: int, server_pid: int, receiver_port: int, webhooks: int, messages: int, topics_count: int = 1
) -> Run:
    """``messages`` in all over ``topics_count`` topics with ``webhooks`` webhooks each (none: publishes only);
    timed until every delivery arrived."""
    async with TopicClientAsync(f"{HOST}:{grpc_port}", timeout=30) as topics, httpx.AsyncClient() as probe:
        run = f"r{time.monotonic_ns()}"
        names = [f"{TOPIC}-{run}-{t}" for t in range(topics_count)]
        hooks = await _put_webhooks(topics, receiver_port, run, names, webhooks)
        before = await _received(probe, receiver_port)
        started, cpu = time.perf_counter(), cpu_seconds(server_pid)
        published = await _publish(grpc_port, names, max(1, messages // topics_count // PUBLISHERS) * PUBLISHERS)
        deliveries = published * webhooks
        await _received(probe, receiver_port, before + deliveries)
        wall, used = time.perf_counter() - started, cpu_seconds(server_pid) - cpu
        faults = _faults(
            (await probe.get(f"http://{HOST}:{receiver_port}/state")).json(), hooks, published // topics_count
        )
        for hook in hooks:
            await topics.delete_webhook(CACHE, hook)
    return Run(deliveries, (deliveries or published) / wall, used, published, faults)


@dataclass
class Backlog:
    """Deliveries from a backlog: every webhook has messages waiting when the receiver starts answering."""

    backlog: int
    per_second: float  # the backlog over the time from the receiver's release to the last delivery
    server_us_per_delivery: float  # server CPU over that time, per delivery (nothing is published meanwhile)
    faults: int


@asynccontextmanager
async def _live_webhooks(
    grpc_port: int, port: int, prefix: str, webhooks: int
) -> AsyncIterator[tuple[httpx.AsyncClient, list[str], list[str], int]]:
    """``webhooks`` webhooks on as many new topics, each past its first delivery (connections open,
    subscriptions live): a probe of the receiver, the topics, the webhooks and the receiver's count before;
    the webhooks are deleted at the end."""
    async with TopicClientAsync(f"{HOST}:{grpc_port}", timeout=30) as topics, httpx.AsyncClient(timeout=600) as probe:
        run = f"{prefix}{time.monotonic_ns()}"
        names = [f"{TOPIC}-{run}-{t}" for t in range(webhooks)]
        hooks = await _put_webhooks(topics, port, run, names, 1)
        before = await _received(probe, port)
        await _publish(grpc_port, names, 1)
        await _received(probe, port, before + webhooks)
        yield probe, names, hooks, before
        for hook in hooks:
            await topics.delete_webhook(CACHE, hook)


async def backlog_run(grpc_port: int, server_pid: int, port: int, webhooks: int, messages: int) -> Backlog:
    """``webhooks`` webhooks on as many topics, ``messages`` in all published while the receiver holds its
    answers (each webhook waits for its first), then released: how fast the backlog is delivered."""
    async with _live_webhooks(grpc_port, port, "b", webhooks) as (probe, names, hooks, before):
        await probe.get(f"http://{HOST}:{port}/hold")
        backlog = await _publish(grpc_port, names, max(1, messages // webhooks // PUBLISHERS) * PUBLISHERS)
        cpu = cpu_seconds(server_pid)
        released = (await probe.get(f"http://{HOST}:{port}/release")).json()["released"]
        await _received(probe, port, before + webhooks + backlog)
        used = cpu_seconds(server_pid) - cpu
        state = (await probe.get(f"http://{HOST}:{port}/state")).json()
        faults = _faults(state, hooks, backlog // webhooks + 1)
    return Backlog(backlog, backlog / (state["last"] - released), 1e6 * used / backlog, faults)


@dataclass
class Outage:
    """A receiver outage: the backlog, how soon deliveries resumed, how fast it was delivered, and faults."""

    backlog: int
    resumed_first: float  # seconds from the receiver's restart to the first webhook's first delivery
    resumed_last: float  # ... to the last webhook's first delivery (the webhooks' retry backoff)
    catch_up_per_second: float  # the backlog over the time from its first delivery to its last
    peak_per_second: float  # the most deliveries in one second
    server_us_per_delivery: float  # server CPU from the restart until the last delivery, per delivery
    faults: int


async def outage_run(
    grpc_port: int, server_pid: int, stack: ExitStack, port: int, webhooks: int, outage: float
) -> Outage:
    """``webhooks`` webhooks on as many topics; the receiver is stopped for ``outage`` seconds while each topic
    gets `OUTAGE_RATE` messages a second, then restarted: how the backlog is caught up."""
    async with _live_webhooks(grpc_port, port, "o", webhooks) as (probe, names, hooks, _):
        stack.close()  # the receiver stops
        stopped = time.monotonic()
        per_topic = max(1, round(OUTAGE_RATE * outage))
        pace = max(0.0, outage * 0.9 / (per_topic * webhooks / PUBLISHERS))
        backlog = await _publish(grpc_port, names, per_topic, pace)
        await asyncio.sleep(max(0.0, stopped + outage - time.monotonic()))
        stack.enter_context(receiver(port))
        restarted, cpu = time.monotonic(), cpu_seconds(server_pid)
        await _received(probe, port, backlog)
        used = cpu_seconds(server_pid) - cpu
        state = (await probe.get(f"http://{HOST}:{port}/state?times")).json()
        paths = [state["paths"].get(f"/hook/{hook}", [0, 0, 0, 0, 0, 0.0]) for hook in hooks]
        faults = sum(
            duplicates + gaps + abs(per_topic - count) + (first != 2) for first, _, count, duplicates, gaps, _ in paths
        )
    times = state["times"]
    peak = max(bisect.bisect_left(times, t + 1.0) - n for n, t in enumerate(times))
    resumed = [path[5] - restarted for path in paths if path[2]]
    return Outage(
        backlog,
        min(resumed),
        max(resumed),
        backlog / (state["last"] - state["first"]),
        peak,
        1e6 * used / backlog,
        faults,
    )


async def httpx_floor(receiver_port: int, loops: int, messages: int) -> float:
    """``loops`` sequential POST loops sharing one AsyncClient, ``messages`` each: deliveries/s."""
    body = (
        f'{{"cache":"{CACHE}","topic":"{TOPIC}","event_timestamp":1764530000123,"publish_timestamp":1764530000120,'
        f'"topic_sequence_number":1,"token_id":"","text":"{PAYLOAD}","sequence_page":1764529990000000}}'
    ).encode()
    limits = httpx.Limits(max_connections=512, max_keepalive_connections=512)
    async with httpx.AsyncClient(limits=limits, timeout=5, follow_redirects=False) as client:

        async def loop(n: int) -> None:
            url = f"http://{HOST}:{receiver_port}/floor/{n}"
            for _ in range(messages):
                headers = {SIGNATURE_HEADER: sign(body, "secret"), "content-type": "application/json"}
                response = await client.post(url, content=body, headers=headers)
                assert response.status_code == 204

        started = time.perf_counter()
        await asyncio.gather(*(loop(n) for n in range(loops)))
        return loops * messages / (time.perf_counter() - started)


def _median(values: list[float]) -> float:
    return statistics.median(values)


async def benchmark(rounds: int, messages: int, outage: float) -> tuple[dict[str, list[float]], list[float], Outage]:
    figures: dict[str, list[float]] = {}
    loads: list[float] = []

    def record(name: str, value: float) -> None:
        figures.setdefault(name, []).append(value)

    def us_per_delivery(run: Run, plain: Run) -> float:
        return 1e6 * (run.server_cpu - plain.server_cpu * run.published / plain.published) / run.deliveries

    with (
        tempfile.TemporaryDirectory() as data_dir,
        tidings_server(data_dir) as (server, grpc_port),
        ExitStack() as stack,
    ):
        _, port = stack.enter_context(receiver())
        await webhook_run(grpc_port, server.pid, port, 1, max(50, messages // 10))  # warm-up
        for _ in range(rounds):
            loads.append(os.getloadavg()[0])
            one = await webhook_run(grpc_port, server.pid, port, 1, messages)
            record("webhooks1", one.deliveries_per_second)
            record("floor1", await httpx_floor(port, 1, messages))
            ten = await webhook_run(grpc_port, server.pid, port, 10, messages)
            record("webhooks10", ten.deliveries_per_second)
            record("floor10", await httpx_floor(port, 10, messages // 10))
            plain = await webhook_run(grpc_port, server.pid, port, 0, messages)
            record("cpu_publish", 1e6 * plain.server_cpu / plain.published)
            record("cpu10", us_per_delivery(ten, plain))
            spread = await webhook_run(grpc_port, server.pid, port, 1, messages * 10, topics_count=SPREAD)
            plain_spread = await webhook_run(grpc_port, server.pid, port, 0, messages * 10, topics_count=SPREAD)
            record("spread", spread.deliveries_per_second)
            record("spread_publish", plain_spread.deliveries_per_second)
            record("cpu_spread", us_per_delivery(spread, plain_spread))
            backlog = await backlog_run(grpc_port, server.pid, port, SPREAD, messages * 10)
            record("backlog", backlog.per_second)
            record("cpu_backlog", backlog.server_us_per_delivery)
            record("faults", spread.faults + ten.faults + one.faults + backlog.faults)
        loads.append(os.getloadavg()[0])
        caught_up = await outage_run(grpc_port, server.pid, stack, port, SPREAD, outage)
    return figures, loads, caught_up


def _verdict(passed: bool) -> str:
    return "**pass**" if passed else "**miss**"


def report(
    figures: dict[str, list[float]], loads: list[float], outage: Outage, rounds: int, messages: int, down: float
) -> str:
    m = {name: _median(values) for name, values in figures.items()}
    faults = int(sum(figures["faults"]))
    cpu = max(m["cpu10"], m["cpu_spread"])
    rows = [
        ("1 webhook", m["webhooks1"], m["floor1"], "1 httpx loop"),
        ("10 webhooks of one topic", m["webhooks10"], m["floor10"], "10 httpx loops, one client"),
    ]
    targets = [
        ("server CPU per webhook delivery", f"{cpu:,.0f} µs", "≤ 100 µs", cpu <= 100),
        (
            "1 webhook against 1 httpx loop",
            f"{m['webhooks1'] / m['floor1']:.2f}x",
            "≥ 1.5x",
            m["webhooks1"] >= 1.5 * m["floor1"],
        ),
        (
            f"{SPREAD} webhooks on {SPREAD} topics, from a backlog",
            f"{m['backlog']:,.0f}/s, {faults} lost, duplicated or reordered",
            "≥ 5,000/s, none",
            m["backlog"] >= 5000 and faults == 0,
        ),
        (
            f"{SPREAD} webhooks on {SPREAD} topics, while publishing",
            f"{m['spread']:,.0f}/s (publishes alone: {m['spread_publish']:,.0f}/s)",
            "≥ 5,000/s",
            m["spread"] >= 5000,
        ),
        (
            f"catching up after a {down:g} s outage",
            f"{outage.catch_up_per_second:,.0f}/s, {outage.faults} lost, duplicated or reordered",
            "≥ 5,000/s, none",
            outage.catch_up_per_second >= 5000 and outage.faults == 0,
        ),
    ]
    lines = [
        "## Webhooks",
        "",
        f"`python bench/webhooks.py` on {platform.machine()} with {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {datetime.date.today().isoformat()}: medians of {rounds} rounds of "
        f"{messages:,} messages (64-byte text; {messages * 10:,} over the {SPREAD} topics), then one outage. "
        "Load average (1 min) at the start of each round and of the outage: "
        + ", ".join(f"{load:.2f}" for load in loads)
        + ".",
        "",
        "| target | measured against the target | the target | |",
        "| --- | --- | --- | --- |",
        *(f"| {name} | {value} | {wanted} | {_verdict(passed)} |" for name, value, wanted, passed in targets),
        "",
        "| deliveries/s to a do-nothing receiver | tidings | floor | ratio | floor is |",
        "| --- | ---: | ---: | ---: | --- |",
        *(
            f"| {name} | {ours:,.0f} | {floor:,.0f} | **{ours / floor:.2f}x** | {what} |"
            for name, ours, floor, what in rows
        ),
        f"| {SPREAD} webhooks on {SPREAD} topics, while publishing | {m['spread']:,.0f} | "
        f"{m['spread_publish']:,.0f} | {m['spread'] / m['spread_publish']:.2f}x | the same publishes, no webhook |",
        f"| {SPREAD} webhooks on {SPREAD} topics, from a backlog | {m['backlog']:,.0f} | | | |",
        "",
        "| server CPU | µs |",
        "| --- | ---: |",
        f"| per publish, no webhook | {m['cpu_publish']:,.0f} |",
        f"| per delivery, 10 webhooks of one topic | {m['cpu10']:,.0f} |",
        f"| per delivery, {SPREAD} webhooks on {SPREAD} topics | {m['cpu_spread']:,.0f} |",
        f"| per delivery, {SPREAD} webhooks delivering a backlog (no publishes) | {m['cpu_backlog']:,.0f} |",
        f"| per delivery, catching up after the outage (no publishes) | {outage.server_us_per_delivery:,.0f} |",
        "",
        f"Outage: the receiver stopped for {down:g} s while each of the {SPREAD} topics got {OUTAGE_RATE} messages a "
        f"second ({outage.backlog:,} in all, within retention). The webhooks resumed from {outage.resumed_first:.1f} "
        f"to {outage.resumed_last:.1f} s after it was back (the first when its retry backoff ended; its delivered "
        "POST ended the backoff of the others, which wait for the same receiver), "
        f"and the backlog was delivered at {outage.catch_up_per_second:,.0f}/s from its first delivery to its "
        f"last, at most {outage.peak_per_second:,.0f} in one second.",
        "",
        "Reading:",
        "",
        f"- A delivery costs the server {cpu:,.0f} µs at most (it was about 800 µs with httpx, 2026-11-30: pool "
        "bookkeeping, request and response objects, anyio streams and cookies per POST). What is left is the "
        "subscription waking the webhook's worker, the JSON event, the HMAC, one `write` and one read per POST. "
        "Webhooks POST with tidings' own HTTP/1.1 client (`server/webhooks/_http.py`): kept-alive connections per "
        "receiver, the request head built once per URL, a strict sans-IO answer parser; measured sans-IO, a "
        "request and its answer cost 4 µs there against 70 µs through `h11`.",
        f"- One webhook is one round trip per message: {m['webhooks1']:,.0f}/s, {m['webhooks1'] / m['floor1']:.1f}x "
        "the httpx loop, whose own per-request cost sets its pace.",
        f"- {SPREAD} webhooks deliver a backlog at {m['backlog']:,.0f}/s. While publishing, they keep up with the "
        f"publishes ({m['spread'] / m['spread_publish']:.2f}x the rate of the same publishes alone), and "
        "the publishers set the pace: the benchmark's own client takes about a core to publish that fast here.",
        f"- After the outage the first webhook to retry (when its backoff of 0.5 s doubling up to 60 s, with "
        "jitter, ends) finds the receiver back, and its delivered POST ends the backoff of every other webhook of "
        f"that receiver (`WebhookSender.back_off`): all resumed from {outage.resumed_first:.1f} to "
        f"{outage.resumed_last:.1f} s after the receiver was back, and drained the backlog at "
        f"{outage.catch_up_per_second:,.0f}/s (at most {outage.peak_per_second:,.0f} in one second). Before that "
        "wake-up each waited its own backoff, up to 31.5 s after the receiver was back, and the catch-up ran at "
        "637/s (2026-12-07).",
        "",
        "- The receiver (`bench/_webhook_receiver.py`) is a do-nothing HTTP/1.1 server on an asyncio Protocol "
        "(uvloop) in its own process: it answers 204 and checks, per webhook, that topic sequence numbers arrive "
        "one after another (no loss, duplicate or reorder). tidings POSTs each webhook's messages one at a time (in "
        "order, at least once), so one webhook's rate is one round trip per message; the floor is a plain httpx "
        "loop doing the same in the benchmark process (one `AsyncClient`, a signed body of the same size, waiting "
        "for each answer).",
        "- Deliveries/s is measured from the first publish until the receiver counted every delivery; 64 publishes "
        "are in flight meanwhile (the benchmark's lean gRPC client, `bench/_h2client.py`). Server CPU per "
        "delivery is the server's CPU over the run less the "
        "same publishes' without webhooks (measured right after, scaled to the same count), divided by the "
        "deliveries: fan-out to the webhooks' subscriptions, JSON events, HMAC-SHA3-256 signatures, the HTTP "
        "exchanges. The target row shows the larger of the two per-delivery figures.",
        "- Server, receiver and load generator share the machine; figures from a busy machine (load average above "
        "the core count) understate the rates.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--outage", type=float, default=20.0, help="seconds the receiver is down")
    parser.add_argument("--quick", action="store_true", help="1 round of 300 messages, a 3 s outage")
    parser.add_argument("--write", type=Path, help="replace the bench:webhooks section of this Markdown file")
    parser.add_argument("--serve-receiver", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_receiver:
        serve_receiver(args.serve_receiver)
        return
    rounds, messages, outage = (1, 300, 3.0) if args.quick else (args.rounds, args.messages, args.outage)
    import uvloop

    figures, loads, caught_up = uvloop.run(benchmark(rounds, messages, outage))
    text = report(figures, loads, caught_up, rounds, messages, outage)
    print(text)
    if args.write:
        write_section(args.write, "webhooks", text)


if __name__ == "__main__":
    main()
