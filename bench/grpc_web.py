"""Benchmark gRPC-web (Momento's web SDK on the HTTP port) against SSE, h2 gRPC and the HTTP API, in one run.

- **fan-out**: server CPU per delivery to 100 gRPC-web subscribers (text mode, one HTTP/1.1 connection each, as
  browsers' XHRs) against 100 SSE subscribers and 100 gRPC subscribers of the same server (target: gRPC-web at
  most 1.5x SSE's).
- **publish**: server CPU per gRPC-web Publish (text mode, 64-byte text) against an HTTP API
  ``POST /topics/{cache}/{topic}`` of the same body (target: at most 1.5x).

The load generator is this process (uvloop, raw sockets for HTTP, as bench/http_bench.py's, whose measuring and
SSE/gRPC subscribers this reuses); figures are server CPU per operation, which the client does not change.

Usage::

    python bench/grpc_web.py                                 # 3 rounds, 5 s per scenario (~1.5 min)
    python bench/grpc_web.py --quick                         # 1 round, 1 s per scenario
    python bench/grpc_web.py --write docs/performance.md     # also replace the bench:grpc-web section
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime
import os
import platform
import re
import struct
import tempfile
from pathlib import Path

from _report import write_section
from http_bench import (
    CACHE,
    HOST,
    PAYLOAD,
    PUBLISH_CONNECTIONS,
    SUBSCRIBERS,
    FanOut,
    Result,
    _median,
    closed_loop,
    fan_out,
    http_publish,
    tidings_server,
)
from momento_wire_types import cachepubsub_pb2 as pb

_PREFIX = struct.Struct(">BI")
_BASE64_PIECE = re.compile(rb"[A-Za-z0-9+/]*={0,2}")
_topics = iter(range(1, 1 << 30))
_OK_TRAILERS = base64.b64encode(b"\x80\x00\x00\x00\x0fgrpc-status:0\r\n")


def _grpc_web_request(port: int, method: str, message: bytes) -> bytes:
    """One gRPC-web text-mode request, as the web SDK's XHR sends it (its metadata headers but a token)."""
    body = base64.b64encode(_PREFIX.pack(0, len(message)) + message)
    return (
        f"POST /cache_client.pubsub.Pubsub/{method} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
        "Content-Type: application/grpc-web-text\r\nAccept: application/grpc-web-text\r\nX-Grpc-Web: 1\r\n"
        f"X-User-Agent: grpc-web-javascript/0.1\r\nCache: {CACHE}\r\ngrpc-timeout: 4999m\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def _answered_ok(reader: asyncio.StreamReader) -> bool:
    """One gRPC-web answer: 200 with the message frame, then the OK trailers (base64 of each)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    body = await reader.readexactly(length)
    return head[9:12] == b"200" and body.endswith(_OK_TRAILERS)


async def grpc_web_publish(port: int, server_pid: int, duration: float) -> Result:
    """Closed loop of gRPC-web Publish calls over ``PUBLISH_CONNECTIONS`` keep-alive connections."""
    message = pb._PublishRequest(cache_name=CACHE, topic="publish", value=pb._TopicValue(text=PAYLOAD))
    request = _grpc_web_request(port, "Publish", message.SerializeToString())
    return await closed_loop("grpc-web", port, request, _answered_ok, server_pid, duration)


async def grpc_web_subscriber(index: int, port: int, topic: str, fan_out: FanOut, subscribed: asyncio.Event) -> None:
    """A browser-like gRPC-web subscriber: one connection, a chunked text-mode response, every item decoded."""
    reader, writer = await asyncio.open_connection(HOST, port)
    request = pb._SubscriptionRequest(cache_name=CACHE, topic=topic).SerializeToString()
    writer.write(_grpc_web_request(port, "Subscribe", request).replace(b"grpc-timeout: 4999m\r\n", b""))
    try:
        await reader.readuntil(b"\r\n\r\n")
        while True:
            size = int(await reader.readuntil(b"\r\n"), 16)
            if size == 0:
                return
            text = (await reader.readexactly(size + 2))[:-2]  # base64 pieces, each padded on its own
            data = b"".join(base64.b64decode(piece) for piece in _BASE64_PIECE.findall(text) if piece)
            numbers = []
            offset = 0
            while offset < len(data):
                flag, length = _PREFIX.unpack_from(data, offset)
                item = pb._SubscriptionItem.FromString(data[offset + 5 : offset + 5 + length])
                offset += 5 + length
                if flag:
                    return  # trailers
                kind = item.WhichOneof("kind")
                if kind == "item":
                    numbers.append(item.item.topic_sequence_number)
                elif kind == "heartbeat":
                    subscribed.set()
                else:
                    fan_out.errors.append(f"subscriber {index}: {kind}")
            fan_out.delivered(index, numbers)
    finally:
        writer.close()


async def run(duration: float, rounds: int) -> list[Result]:
    """Every scenario, ``rounds`` times, alternating targets so that drift hits them alike."""
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as data_dir, tidings_server(data_dir) as (process, grpc_port, http_port):
        for _ in range(rounds):
            results.append(await http_publish("http", http_port, process.pid, duration))
            results.append(await grpc_web_publish(http_port, process.pid, duration))
            for target in ("sse", "grpc-web", "grpc"):
                results.append(
                    await fan_out(target, grpc_port, http_port, process.pid, duration, SUBSCRIBERS, grpc_web_subscriber)
                )
    return results


def report(results: list[Result], duration: float, rounds: int) -> str:
    """A markdown section with the figures (medians over rounds) and the targets."""
    grouped: dict[tuple[str, str], list[Result]] = {}
    for result in results:
        grouped.setdefault((result.scenario, result.target), []).append(result)
    by = {key: _median(values) for key, values in grouped.items()}
    fan = f"fan-out x{SUBSCRIBERS}"
    web, sse, h2 = by[(fan, "grpc-web")], by[(fan, "sse")], by[(fan, "grpc")]
    web_publish, http = by[("publish", "grpc-web")], by[("publish", "http")]
    delivery_ratio = web.server_us_per_operation / sse.server_us_per_operation
    publish_ratio = web_publish.server_us_per_operation / http.server_us_per_operation

    def row(name: str, result: Result) -> str:
        return (
            f"| {name} | {result.rate:,.0f} | {result.server_us_per_operation:.1f} "
            f"| {result.server_cpu_percent:.0f}% | {result.client_cpu_percent:.0f}% |"
        )

    others = sorted(100 * result.window.others_cpu / result.window.wall for result in results)
    busy = others[len(others) // 2]
    return "\n".join(
        [
            "## gRPC-web (Momento's web SDK) against SSE, gRPC and the HTTP API",
            "",
            f"`python bench/grpc_web.py` on {platform.machine()} with {os.cpu_count()} cores, Python "
            f"{platform.python_version()}, {datetime.date.today().isoformat()}: medians of {rounds} round(s), "
            f"{duration:g} s measured per scenario after 1 s of warm-up, one server for every scenario. Server "
            "and load generator (one process, uvloop, raw sockets for HTTP) share the machine.",
            "",
            "| scenario | per second | server CPU µs/op | server CPU | client CPU |",
            "| --- | ---: | ---: | ---: | ---: |",
            row(f"gRPC-web fan-out to {SUBSCRIBERS} subscribers (text mode), deliveries", web),
            row(f"SSE fan-out to {SUBSCRIBERS} subscribers, deliveries", sse),
            row(f"gRPC (h2) fan-out to {SUBSCRIBERS} subscribers, deliveries", h2),
            row("gRPC-web Publish (text mode), calls", web_publish),
            row("HTTP API `POST /topics/{cache}/{topic}`, requests", http),
            "",
            f"- Other processes on the machine used {busy:.0f}% of a core in the median measured window"
            + (
                ": it was not quiet, so the absolute figures are high; the ratios are of one run." if busy > 20 else "."
            ),
            f"- Server CPU per delivery, gRPC-web / SSE: **{delivery_ratio:.2f}x** (target at most 1.5x); "
            f"gRPC-web / gRPC: {web.server_us_per_operation / h2.server_us_per_operation:.2f}x.",
            f"- Server CPU per publish, gRPC-web / HTTP API: **{publish_ratio:.2f}x** (target at most 1.5x).",
            "- gRPC-web subscribers are what a browser's XHR is: one HTTP/1.1 connection each, a chunked text-mode "
            "response; each batch the core delivers is one chunk (base64 of its frames). The core delivers to "
            "them as to SSE (a writer whose `send` is awaited), with the gRPC servicer's encoded items; the "
            "framing and base64 are the difference.",
            f"- Publish: {PUBLISH_CONNECTIONS} keep-alive connections, one call in flight on each, 64-byte text, "
            "no token (anonymous on loopback), as bench/http_bench.py's HTTP publish.",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 round, 1 s per scenario")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds measured per scenario")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (medians are reported)")
    parser.add_argument("--write", type=Path, metavar="FILE", help="replace the bench:grpc-web section of FILE")
    arguments = parser.parse_args()
    import uvloop

    duration = 1.0 if arguments.quick else arguments.duration
    rounds = 1 if arguments.quick else arguments.rounds
    section = report(uvloop.run(run(duration, rounds)), duration, rounds)
    print(section)
    if arguments.write:
        write_section(arguments.write, "grpc-web", section)


if __name__ == "__main__":
    main()
