"""Benchmark tidings' HTTP transport against ceilings measured in the same run.

- **publish**: HTTP publish requests/s (``POST /topics/{cache}/{topic}``, 64-byte text) against a do-nothing
  Starlette endpoint of the same path served by the same uvicorn (same protocol implementation, uvloop), so
  the ratio is what tidings' own work costs over the framework's floor (target >= 0.7x).
- **fan-out**: deliveries/s to 100 Server-Sent Events subscribers against 100 gRPC subscribers of the same
  server, one publisher (gRPC) running at most 32 messages ahead of the slowest subscriber (as bench/run.py's
  fan-out does).

The load generator is this process (uvloop, raw sockets for HTTP: no HTTP client library in the way); its CPU
use is reported next to the server's, so a client-bound figure shows as such.

Usage::

    python bench/http_bench.py                                 # 3 rounds, 5 s per scenario (~1 min)
    python bench/http_bench.py --quick                         # 1 round, 1 s per scenario
    python bench/http_bench.py --write docs/performance.md     # also replace the bench:http section
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import itertools
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc.aio
from _proc import free_port, running
from _report import write_section
from momento_wire_types import cachepubsub_pb2 as pb
from momento_wire_types import cachepubsub_pb2_grpc

HOST = "127.0.0.1"
CACHE = "bench"
PAYLOAD = "x" * 64
PUBLISH_CONNECTIONS = 32
SUBSCRIBERS = 100
WINDOW = 32  # messages the fan-out publisher may run ahead of the slowest subscriber
PUBLISHER_CALLS = 8
_TICKS = os.sysconf("SC_CLK_TCK")


# --- measuring -------------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time ``pid`` has used, from /proc (Linux)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def machine_busy_seconds() -> float:
    """CPU time all processes on the machine used since boot (user, nice, system, steal; all cores)."""
    with open("/proc/stat") as stat:
        fields = stat.readline().split()
    return sum(int(fields[index]) for index in (1, 2, 3, 8)) / _TICKS


@dataclass
class Window:
    """A measured interval: wall time, the CPU time of the server and of this process, and of everything."""

    wall: float
    server_cpu: float
    client_cpu: float
    machine_cpu: float

    @classmethod
    async def measure(cls, server_pid: int, duration: float) -> Window:
        wall, server, client = time.perf_counter(), cpu_seconds(server_pid), time.process_time()
        machine = machine_busy_seconds()
        await asyncio.sleep(duration)
        return cls(
            time.perf_counter() - wall,
            cpu_seconds(server_pid) - server,
            time.process_time() - client,
            machine_busy_seconds() - machine,
        )

    @property
    def others_cpu(self) -> float:
        """CPU time other processes used in the window (seconds)."""
        return max(0.0, self.machine_cpu - self.server_cpu - self.client_cpu)


@dataclass
class Result:
    """One scenario on one target."""

    scenario: str
    target: str
    rate: float
    window: Window

    @property
    def server_cpu_percent(self) -> float:
        return 100 * self.window.server_cpu / self.window.wall

    @property
    def client_cpu_percent(self) -> float:
        return 100 * self.window.client_cpu / self.window.wall

    @property
    def server_us_per_operation(self) -> float:
        """Server CPU per request (publish) or delivery (fan-out), in microseconds."""
        return 1e6 * self.window.server_cpu / (self.rate * self.window.wall)


# --- servers ---------------------------------------------------------------------------------------------


@contextmanager
def tidings_server(data_dir: str) -> Iterator[tuple[subprocess.Popen[str], int, int]]:
    """tidings with HTTP on; yields the process, its gRPC port and its HTTP port."""
    grpc_port, http_port = free_port(HOST), free_port(HOST)
    command = [
        sys.executable, "-m", "tidings", "server", "--host", HOST, "--port", str(grpc_port),
        "--http-port", str(http_port), "--data-dir", data_dir, "--create-cache", CACHE,
        "--max-subscriptions-per-cache", "100000",
    ]  # fmt: skip
    with running(command, re.compile("listening on grpc://")) as process:
        yield process, grpc_port, http_port


@contextmanager
def ceiling_server() -> Iterator[tuple[subprocess.Popen[str], int]]:
    """The do-nothing Starlette endpoint under the same uvicorn; yields the process and its port."""
    port = free_port(HOST)
    command = [sys.executable, str(Path(__file__).resolve()), "--serve-ceiling", str(port)]
    with running(command, re.compile("ceiling listening")) as process:
        yield process, port


def ceiling_app() -> object:
    """A Starlette app whose ``POST /topics/{cache}/{topic}`` reads the body and answers 204, nothing else."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def publish(request: Request) -> Response:
        await request.body()
        return Response(status_code=204)

    return Starlette(routes=[Route("/topics/{path:path}", publish, methods=["POST"])])


def serve_ceiling(port: int) -> None:
    """Serve `ceiling_app` under uvicorn with the settings tidings' HttpServer uses."""
    import uvicorn
    import uvloop

    from tidings.server.http._server import bind

    config = uvicorn.Config(ceiling_app(), lifespan="off", log_config=None, access_log=False, server_header=False)
    sock = bind(HOST, port)
    print("ceiling listening", file=sys.stderr, flush=True)
    uvloop.run(uvicorn.Server(config).serve(sockets=[sock]))


async def asgi_publish(requests: int = 20_000) -> tuple[float, float]:
    """In-process, no sockets: microseconds per publish through tidings' app and through `ceiling_app`.

    The same request is handed straight to each ASGI app (tidings' with a real topics service over the
    memory engine), so what differs is only the application code; uvicorn and the kernel are left out.
    """
    from tidings.server.core import ANONYMOUS, TopicsService
    from tidings.server.engine.memory import MemoryEngine
    from tidings.server.http import build_app
    from tidings.server.http._live import LiveRequests
    from tidings.server.store.sqlite import SqliteStore

    body = PAYLOAD.encode()
    path = f"/topics/{CACHE}/asgi"
    scope = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
        "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(),
        "query_string": b"", "root_path": "", "client": (HOST, 1), "server": (HOST, 2),
        "headers": [(b"host", b"x"), (b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())],
    }  # fmt: skip
    statuses: list[int] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, object]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    with tempfile.TemporaryDirectory() as data_dir:
        store = await SqliteStore.open(Path(data_dir))
        service = TopicsService(MemoryEngine(1000, 1 << 20), store)
        await service.start()
        await service.create_cache(CACHE)
        apps = {"tidings": build_app(service, lambda _: ANONYMOUS, LiveRequests(), long_poll_timeout=30)}
        apps["ceiling"] = ceiling_app()
        timings: dict[str, list[float]] = {"tidings": [], "ceiling": []}
        for _ in range(3):  # interleaved; the best of three for each
            for name, app in apps.items():
                started = time.perf_counter()
                for _ in range(requests):
                    await app(dict(scope), receive, send)
                timings[name].append((time.perf_counter() - started) / requests * 1e6)
        await service.close()
        await store.close()
    if set(statuses) != {204}:
        raise RuntimeError(f"in-process publishes answered {set(statuses)}")
    return min(timings["tidings"]), min(timings["ceiling"])


# --- HTTP publish ----------------------------------------------------------------------------------------


def _publish_request(port: int) -> bytes:
    body = PAYLOAD.encode()
    return (
        f"POST /topics/{CACHE}/publish HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    """Read one response; its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    match = re.search(rb"(?i)content-length: *(\d+)", head)
    if match and int(match.group(1)):
        await reader.readexactly(int(match.group(1)))
    return status


# Reads one answer from a keep-alive connection; True when it says the call succeeded.
Answered = Callable[[asyncio.StreamReader], Awaitable[bool]]


async def _answered_204(reader: asyncio.StreamReader) -> bool:
    return await _read_response(reader) == 204


async def closed_loop(
    target: str, port: int, request: bytes, answered: Answered, server_pid: int, duration: float
) -> Result:
    """``request`` in a closed loop over ``PUBLISH_CONNECTIONS`` keep-alive connections; calls/s in the measured
    window (every answer must say it succeeded)."""
    completed = 0
    failed = 0
    stop = asyncio.Event()

    async def connection() -> None:
        nonlocal completed, failed
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            while not stop.is_set():
                writer.write(request)
                if await answered(reader):
                    completed += 1
                else:
                    failed += 1
        finally:
            writer.close()

    tasks = [asyncio.create_task(connection()) for _ in range(PUBLISH_CONNECTIONS)]
    await asyncio.sleep(1.0)  # warm-up
    before = completed
    window = await Window.measure(server_pid, duration)
    rate = (completed - before) / window.wall
    stop.set()
    await asyncio.gather(*tasks)
    if failed:
        raise RuntimeError(f"{failed} publish requests to {target} failed")
    return Result("publish", target, rate, window)


async def http_publish(target: str, port: int, server_pid: int, duration: float) -> Result:
    """Closed loop of HTTP API publishes over ``PUBLISH_CONNECTIONS`` keep-alive connections."""
    return await closed_loop(target, port, _publish_request(port), _answered_204, server_pid, duration)


# --- fan-out ---------------------------------------------------------------------------------------------


class FanOut:
    """Counts what each subscriber received and paces the publisher to the slowest one."""

    def __init__(self, subscribers: int) -> None:
        self.received = [0] * subscribers
        self.errors: list[str] = []
        self.progress = asyncio.Event()

    def delivered(self, index: int, sequence_numbers: list[int]) -> None:
        expected = self.received[index] + 1
        if sequence_numbers and sequence_numbers[0] != expected:
            self.errors.append(f"subscriber {index}: got {sequence_numbers[0]}, expected {expected}")
        self.received[index] += len(sequence_numbers)
        self.progress.set()

    @property
    def total(self) -> int:
        return sum(self.received)

    async def publish(self, stub: cachepubsub_pb2_grpc.PubsubStub, topic: str, stop: asyncio.Event) -> None:
        request = pb._PublishRequest(cache_name=CACHE, topic=topic, value=pb._TopicValue(text=PAYLOAD))
        published = 0

        async def caller() -> None:
            nonlocal published
            while not stop.is_set():
                while published - min(self.received) >= WINDOW:
                    self.progress.clear()
                    await self.progress.wait()
                    if stop.is_set():
                        return
                published += 1
                await stub.Publish(request)

        await asyncio.gather(*(caller() for _ in range(PUBLISHER_CALLS)))


_topic_numbers = itertools.count(1)
_SSE_ID = re.compile(rb"\nid: \d+:(\d+)\n")


async def sse_subscriber(index: int, port: int, topic: str, fan_out: FanOut, subscribed: asyncio.Event) -> None:
    """A browser-like SSE client: one connection, counts item events by their ids."""
    reader, writer = await asyncio.open_connection(HOST, port)
    writer.write(f"GET /topics/{CACHE}/{topic}/events HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
    try:
        await reader.readuntil(b"event: heartbeat")
        subscribed.set()
        tail = b""
        while chunk := await reader.read(65536):
            data = tail + chunk
            cut = data.rfind(b"\n\n") + 2
            data, tail = data[:cut], data[cut:]
            fan_out.delivered(index, [int(number) for number in _SSE_ID.findall(b"\n" + data)])
    finally:
        writer.close()


async def grpc_subscriber(
    index: int, stub: cachepubsub_pb2_grpc.PubsubStub, topic: str, fan_out: FanOut, subscribed: asyncio.Event
) -> None:
    """A raw gRPC subscriber that decodes every item."""
    call = stub.Subscribe(pb._SubscriptionRequest(cache_name=CACHE, topic=topic))
    async for message in call:
        kind = message.WhichOneof("kind")
        if kind == "heartbeat":
            subscribed.set()
        elif kind == "item":
            fan_out.delivered(index, [message.item.topic_sequence_number])
        else:
            fan_out.errors.append(f"subscriber {index}: {kind}")


# A subscriber over another transport: (index, HTTP port, topic, fan-out state, set once subscribed).
HttpSubscriber = Callable[[int, int, str, FanOut, asyncio.Event], Awaitable[None]]


async def fan_out(
    target: str,
    grpc_port: int,
    http_port: int,
    server_pid: int,
    duration: float,
    subscribers: int,
    http_subscriber: HttpSubscriber | None = None,
) -> Result:
    """Deliveries/s to ``subscribers`` SSE (target "sse"), gRPC (target "grpc") or ``http_subscriber``
    (any other target, on the HTTP port) subscribers."""
    topic = f"fanout-{target}-{next(_topic_numbers)}"  # a fresh topic: sequence numbers start at 1
    state = FanOut(subscribers)
    stop = asyncio.Event()
    channels = [grpc.aio.insecure_channel(f"{HOST}:{grpc_port}") for _ in range(max(1, subscribers // 50) + 1)]
    stubs = [cachepubsub_pb2_grpc.PubsubStub(channel) for channel in channels]
    subscribed = [asyncio.Event() for _ in range(subscribers)]
    readers: list[asyncio.Task[None]] = []
    for index in range(subscribers):
        if target == "grpc":
            reader: Awaitable[None] = grpc_subscriber(index, stubs[1 + index // 50], topic, state, subscribed[index])
        else:
            subscriber = sse_subscriber if target == "sse" else http_subscriber
            assert subscriber is not None, f"no subscriber for {target}"
            reader = subscriber(index, http_port, topic, state, subscribed[index])
        readers.append(asyncio.create_task(reader))
    await asyncio.gather(*(event.wait() for event in subscribed))
    publisher = asyncio.create_task(state.publish(stubs[0], topic, stop))
    await asyncio.sleep(1.0)  # warm-up
    before = state.total
    window = await Window.measure(server_pid, duration)
    rate = (state.total - before) / window.wall
    stop.set()
    state.progress.set()
    await publisher
    for task in readers:
        task.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    for channel in channels:
        await channel.close()
    if state.errors:
        raise RuntimeError(f"{target} fan-out: {state.errors[:3]}")
    return Result(f"fan-out x{subscribers}", target, rate, window)


# --- report ----------------------------------------------------------------------------------------------


def _median(results: list[Result]) -> Result:
    """The round with the median rate."""
    return sorted(results, key=lambda result: result.rate)[len(results) // 2]


def report(results: list[Result], duration: float, rounds: int, asgi: tuple[float, float]) -> str:
    """A markdown section with the figures (medians over rounds) and what they mean."""
    grouped: dict[tuple[str, str], list[Result]] = {}
    for result in results:
        grouped.setdefault((result.scenario, result.target), []).append(result)
    by_key = {key: _median(values) for key, values in grouped.items()}
    publish, ceiling = by_key[("publish", "tidings")], by_key[("publish", "ceiling")]
    fan_out_key = next(scenario for scenario, _ in by_key if scenario.startswith("fan-out"))
    sse, grpc_result = by_key[(fan_out_key, "sse")], by_key[(fan_out_key, "grpc")]
    rows = [
        ("HTTP publish, requests/s", publish, ceiling, "do-nothing Starlette endpoint"),
        (f"SSE fan-out to {fan_out_key[9:]} subscribers, deliveries/s", sse, grpc_result, "gRPC subscribers"),
    ]
    lines = [
        "## HTTP transport",
        "",
        f"`python bench/http_bench.py` on {platform.machine()} with {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {datetime.date.today().isoformat()}: medians of {rounds} rounds, "
        f"{duration:g} s measured per scenario after 1 s of warm-up. Server and load generator (one process, "
        "uvloop, raw sockets for HTTP) share the machine; CPU is the share of one core used in the window.",
        "",
        "| scenario | tidings | reference | ratio | reference is | server CPU µs/op (ours / ref) "
        "| server CPU | client CPU (ours / ref) |",
        "| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    for name, ours, reference, what in rows:
        lines.append(
            f"| {name} | {ours.rate:,.0f} | {reference.rate:,.0f} | **{ours.rate / reference.rate:.2f}x** | {what} "
            f"| {ours.server_us_per_operation:.0f} / {reference.server_us_per_operation:.0f} "
            f"| {ours.server_cpu_percent:.0f}% / {reference.server_cpu_percent:.0f}% "
            f"| {ours.client_cpu_percent:.0f}% / {reference.client_cpu_percent:.0f}% |"
        )
    ours_us, reference_us = asgi
    lines.append(
        f"| HTTP publish in process (no sockets), requests/s | {1e6 / ours_us:,.0f} | {1e6 / reference_us:,.0f} "
        f"| **{reference_us / ours_us:.2f}x** | the same endpoint | {ours_us:.1f} / {reference_us:.1f} | | |"
    )
    others = sorted(100 * result.window.others_cpu / result.window.wall for result in results)
    median_others, max_others = others[len(others) // 2], others[-1]
    lines += [
        "",
        f"- Other processes on the machine used {median_others:.0f}% of a core in the median measured window "
        f"(at most {max_others:.0f}%)"
        + (": it was not quiet, so read the throughput figures with care." if median_others > 20 else "."),
        f"- Publish: {PUBLISH_CONNECTIONS} keep-alive connections, one request in flight on each, 64-byte "
        "text bodies. The reference is a Starlette endpoint that reads the body and answers 204 under the same "
        "uvicorn settings and protocol implementation (h11); the ratio is what tidings' own work (path, content "
        "type and token checks, bounded body read, core publish, counters) costs over that floor.",
        f"- Fan-out: {SUBSCRIBERS} subscribers of one topic, SSE (one HTTP/1.1 connection each, as browsers "
        f"do) vs gRPC (50 streams per connection); one gRPC publisher with {PUBLISHER_CALLS} calls in flight runs "
        f"at most {WINDOW} messages ahead of the slowest subscriber. Every subscriber checks that sequence "
        "numbers arrive in order without gaps. The gRPC load generator decodes every protobuf item, which costs "
        "it more CPU per delivery than reading SSE frames.",
        "- In process: the same request handed straight to each ASGI app on one core, best of three runs of "
        "20,000; it leaves uvicorn, the kernel and the load generator out and shows what tidings' application "
        "code costs per publish over the reference's (µs/op there is wall time per request).",
        "- Server CPU per operation does not depend on the client and is steadier than throughput on a shared "
        "machine. A client CPU near 100% means that figure is bound by the load generator, not the server.",
    ]
    return "\n".join(lines)


async def run(duration: float, subscribers: int, rounds: int) -> list[Result]:
    """Every scenario, ``rounds`` times; reference and tidings alternate so that drift hits both alike."""
    results: list[Result] = []
    with (
        tempfile.TemporaryDirectory() as data_dir,
        tidings_server(data_dir) as (process, grpc_port, http_port),
        ceiling_server() as (ceiling, ceiling_port),
    ):
        for _ in range(rounds):
            results.append(await http_publish("ceiling", ceiling_port, ceiling.pid, duration))
            results.append(await http_publish("tidings", http_port, process.pid, duration))
            for target in ("grpc", "sse"):
                results.append(await fan_out(target, grpc_port, http_port, process.pid, duration, subscribers))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 s per scenario")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds measured per scenario")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (medians are reported)")
    parser.add_argument("--subscribers", type=int, default=SUBSCRIBERS)
    parser.add_argument("--write", type=Path, metavar="FILE", help="replace the bench:http section of FILE")
    parser.add_argument("--serve-ceiling", type=int, metavar="PORT", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.serve_ceiling:
        serve_ceiling(arguments.serve_ceiling)
        return
    import uvloop

    duration = 1.0 if arguments.quick else arguments.duration
    rounds = 1 if arguments.quick else arguments.rounds
    results = uvloop.run(run(duration, arguments.subscribers, rounds))
    asgi = uvloop.run(asgi_publish(5_000 if arguments.quick else 20_000))
    section = report(results, duration, rounds, asgi)
    print(section)
    if arguments.write:
        write_section(arguments.write, "http", section)


if __name__ == "__main__":
    main()
