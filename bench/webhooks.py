"""Benchmark webhook deliveries against a plain httpx loop, and what webhooks cost the server per publish.

- **deliveries**: messages/s that reach a local do-nothing receiver (a Starlette endpoint answering 204, in its
  own process) through 1 and through 10 webhooks of one topic, against the floor: the same receiver driven by
  as many plain httpx loops (one ``AsyncClient``, each loop POSTing a signed event of the same size and waiting
  for the answer, as a webhook does), in this process.
- **publish CPU**: server CPU per published message while 2,000 messages are published and delivered with 10
  webhooks on the topic, against the same publishes with none.

Usage::

    python bench/webhooks.py                              # 3 rounds, 2,000 messages per scenario
    python bench/webhooks.py --quick                      # 1 round, 300 messages
    python bench/webhooks.py --write docs/performance.md  # also replace the bench:webhooks section
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from _proc import free_port, running
from _report import write_section

from tidings import PutWebhook, TopicClientAsync, TopicPublish
from tidings.webhooks import SIGNATURE_HEADER, sign

HOST = "127.0.0.1"
CACHE = "bench"
TOPIC = "events"
PAYLOAD = "x" * 64
PUBLISHERS = 8
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
    ]  # fmt: skip
    with running(command, re.compile("listening on grpc://")) as process:
        yield process, port


@contextmanager
def receiver() -> Iterator[tuple[subprocess.Popen[str], int]]:
    """The do-nothing receiver in its own process; yields it and its port (``GET /count``: POSTs so far;
    ``GET /count?at_least=N`` answers once there were N)."""
    port = free_port(HOST)
    command = [sys.executable, str(Path(__file__).resolve()), "--serve-receiver", str(port)]
    with running(command, re.compile("receiver listening")) as process:
        yield process, port


def serve_receiver(port: int) -> None:
    """A Starlette app under uvicorn (uvloop): ``POST /hook/{n}`` reads the body and answers 204."""
    import uvicorn
    import uvloop
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    received = 0
    waiters: list[tuple[int, asyncio.Future[None]]] = []

    async def hook(request: Request) -> Response:
        nonlocal received
        await request.body()
        received += 1
        for waiter in [waiter for waiter in waiters if waiter[0] <= received]:
            waiters.remove(waiter)
            waiter[1].set_result(None)
        return Response(status_code=204)

    async def count(request: Request) -> Response:
        at_least = int(request.query_params.get("at_least", "0"))
        if received < at_least:
            arrived = asyncio.get_running_loop().create_future()
            waiters.append((at_least, arrived))
            await arrived
        return JSONResponse({"count": received})

    app = Starlette(routes=[Route("/hook/{n}", hook, methods=["POST"]), Route("/count", count)])
    config = uvicorn.Config(app, host=HOST, port=port, lifespan="off", log_config=None, access_log=False)
    print("receiver listening", file=sys.stderr, flush=True)
    uvloop.run(uvicorn.Server(config).serve())


async def _received(client: httpx.AsyncClient, port: int, at_least: int = 0) -> int:
    """The receiver's count of POSTs, once it is at least ``at_least``."""
    response = await client.get(f"http://{HOST}:{port}/count", params={"at_least": at_least}, timeout=600)
    count: int = response.json()["count"]
    return count


@dataclass
class Run:
    """One measured run: messages delivered per second, and the server's CPU per published message."""

    deliveries_per_second: float
    server_us_per_publish: float


async def webhook_run(grpc_port: int, server_pid: int, receiver_port: int, webhooks: int, messages: int) -> Run:
    """Publish ``messages`` to a topic with ``webhooks`` webhooks; time until every delivery arrived."""
    async with TopicClientAsync(f"{HOST}:{grpc_port}", timeout=30) as topics, httpx.AsyncClient() as probe:
        topic = f"{TOPIC}-{time.monotonic_ns()}"
        for n in range(webhooks):
            url = f"http://{HOST}:{receiver_port}/hook/{n}"
            assert isinstance(await topics.put_webhook(CACHE, f"hook-{n}", topic, url), PutWebhook.Success)
        before = await _received(probe, receiver_port)
        started, cpu = time.perf_counter(), cpu_seconds(server_pid)

        async def publisher(share: int) -> None:
            for _ in range(share):
                published = await topics.publish(CACHE, topic, PAYLOAD)
                assert isinstance(published, TopicPublish.Success), published

        await asyncio.gather(*(publisher(messages // PUBLISHERS) for _ in range(PUBLISHERS)))
        published = messages // PUBLISHERS * PUBLISHERS
        await _received(probe, receiver_port, before + published * webhooks)
        wall, used = time.perf_counter() - started, cpu_seconds(server_pid) - cpu
        for n in range(webhooks):
            await topics.delete_webhook(CACHE, f"hook-{n}")
    return Run(published * webhooks / wall, 1e6 * used / published)


async def plain_publish_run(grpc_port: int, server_pid: int, messages: int) -> Run:
    """The same publishes with no webhook on the topic."""
    async with TopicClientAsync(f"{HOST}:{grpc_port}", timeout=30) as topics:
        topic = f"{TOPIC}-{time.monotonic_ns()}"
        started, cpu = time.perf_counter(), cpu_seconds(server_pid)

        async def publisher(share: int) -> None:
            for _ in range(share):
                published = await topics.publish(CACHE, topic, PAYLOAD)
                assert isinstance(published, TopicPublish.Success), published

        await asyncio.gather(*(publisher(messages // PUBLISHERS) for _ in range(PUBLISHERS)))
        published = messages // PUBLISHERS * PUBLISHERS
        wall, used = time.perf_counter() - started, cpu_seconds(server_pid) - cpu
    return Run(published / wall, 1e6 * used / published)


async def httpx_floor(receiver_port: int, loops: int, messages: int) -> float:
    """``loops`` sequential POST loops sharing one AsyncClient, ``messages`` each: deliveries/s."""
    body = (
        f'{{"cache":"{CACHE}","topic":"{TOPIC}","event_timestamp":1764530000123,"publish_timestamp":1764530000120,'
        f'"topic_sequence_number":1,"token_id":"","text":"{PAYLOAD}","sequence_page":1764529990000000}}'
    ).encode()
    limits = httpx.Limits(max_connections=512, max_keepalive_connections=512)
    async with httpx.AsyncClient(limits=limits, timeout=5, follow_redirects=False) as client:

        async def loop(n: int) -> None:
            url = f"http://{HOST}:{receiver_port}/hook/{n}"
            for _ in range(messages):
                headers = {SIGNATURE_HEADER: sign(body, "secret"), "content-type": "application/json"}
                response = await client.post(url, content=body, headers=headers)
                assert response.status_code == 204

        started = time.perf_counter()
        await asyncio.gather(*(loop(n) for n in range(loops)))
        return loops * messages / (time.perf_counter() - started)


def _median(values: list[float]) -> float:
    return statistics.median(values)


async def benchmark(rounds: int, messages: int) -> tuple[dict[str, list[float]], list[float]]:
    figures: dict[str, list[float]] = {}
    loads: list[float] = []

    def record(name: str, value: float) -> None:
        figures.setdefault(name, []).append(value)

    with (
        tempfile.TemporaryDirectory() as data_dir,
        tidings_server(data_dir) as (server, grpc_port),
        receiver() as (_, receiver_port),
    ):
        await webhook_run(grpc_port, server.pid, receiver_port, 1, max(50, messages // 10))  # warm-up
        for _ in range(rounds):
            loads.append(os.getloadavg()[0])
            for webhooks in (1, 10):
                run = await webhook_run(grpc_port, server.pid, receiver_port, webhooks, messages)
                record(f"webhooks{webhooks}", run.deliveries_per_second)
                if webhooks == 10:
                    record("cpu10", run.server_us_per_publish)
                record(f"floor{webhooks}", await httpx_floor(receiver_port, webhooks, messages // webhooks))
            record("cpu0", (await plain_publish_run(grpc_port, server.pid, messages)).server_us_per_publish)
    return figures, loads


def report(figures: dict[str, list[float]], loads: list[float], rounds: int, messages: int) -> str:
    m = {name: _median(values) for name, values in figures.items()}
    rows = [
        ("1 webhook", m["webhooks1"], m["floor1"], "1 httpx loop"),
        ("10 webhooks of one topic", m["webhooks10"], m["floor10"], "10 httpx loops, one client"),
    ]
    lines = [
        "## Webhooks",
        "",
        f"`python bench/webhooks.py` on {platform.machine()} with {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {datetime.date.today().isoformat()}: medians of {rounds} rounds of "
        f"{messages:,} messages (64-byte text). Load average (1 min) at the start of each round: "
        + ", ".join(f"{load:.2f}" for load in loads)
        + ".",
        "",
        "| deliveries/s to a do-nothing receiver | tidings | floor | ratio | floor is |",
        "| --- | ---: | ---: | ---: | --- |",
        *(
            f"| {name} | {ours:,.0f} | {floor:,.0f} | **{ours / floor:.2f}x** | {what} |"
            for name, ours, floor, what in rows
        ),
        "",
        "| server CPU per published message | µs |",
        "| --- | ---: |",
        f"| no webhook on the topic | {m['cpu0']:,.0f} |",
        f"| 10 webhooks on the topic (publish and 10 deliveries) | {m['cpu10']:,.0f} |",
        "",
        "- The receiver is a Starlette endpoint (uvicorn, uvloop) in its own process that reads the body and answers "
        "204. tidings POSTs each webhook's messages one at a time (in order, at least once), so one webhook's rate "
        "is one round trip per message; the floor is a plain httpx loop doing the same in the benchmark process "
        "(one `AsyncClient`, a signed body of the same size, waiting for each answer).",
        "- Deliveries/s is measured from the first publish until the receiver counted every delivery; 8 publishers "
        "publish with tidings' SDK meanwhile. Server CPU per message covers the whole run (publishes, fan-out to "
        "the webhooks' subscriptions, JSON events, HMAC-SHA3-256 signatures, the HTTP exchanges).",
        "- Server, receiver and load generator share the machine; figures from a busy machine (load average above "
        "the core count) understate the rates.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="1 round of 300 messages")
    parser.add_argument("--write", type=Path, help="replace the bench:webhooks section of this Markdown file")
    parser.add_argument("--serve-receiver", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_receiver:
        serve_receiver(args.serve_receiver)
        return
    rounds, messages = (1, 300) if args.quick else (args.rounds, args.messages)
    import uvloop

    figures, loads = uvloop.run(benchmark(rounds, messages))
    text = report(figures, loads, rounds, messages)
    print(text)
    if args.write:
        write_section(args.write, "webhooks", text)


if __name__ == "__main__":
    main()
