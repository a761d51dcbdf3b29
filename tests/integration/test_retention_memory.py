"""Retention bounds the memory messages really hold: their values and the encodings transports cache on them,
per topic (``--retention-size``) and for the whole server (``--max-retained-bytes``). Measured as RSS."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc.aio
import httpx
from momento_wire_types import cachepubsub_pb2_grpc

from tests.integration._server import ServerProcess
from tests.integration._wire import open_subscription, publish, read_non_heartbeat
from tests.integration.conftest import create_cache

StartServer = Callable[..., ServerProcess]
MiB = 1024 * 1024
TOPICS = 40
PER_TOPIC = 16  # x 64 KiB = the 1 MiB --retention-size of each topic


def _rss(server: ServerProcess) -> int:
    assert server.process is not None
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def _fill_and_read_every_topic(server: ServerProcess, cache: str) -> None:
    """Publish 1 MiB to each topic, then read each one back over gRPC and the HTTP long-poll."""
    value = "v" * (64 * 1024 - 16)
    async with (
        grpc.aio.insecure_channel(server.endpoint) as channel,
        httpx.AsyncClient(base_url=server.http_url, timeout=30) as http,
    ):
        stub = cachepubsub_pb2_grpc.PubsubStub(channel)
        for topic in range(TOPICS):
            for i in range(PER_TOPIC):
                await publish(stub, cache, f"t{topic}", f"{i:08d}{value}")
        for topic in range(TOPICS):
            call = await open_subscription(stub, cache, f"t{topic}", resume_at=1)
            await read_non_heartbeat(call)  # an item, or the discontinuity to what is still retained
            call.cancel()
            polled = await http.get(f"/topics/{cache}/t{topic}", params={"sequence_number": 1})
            assert polled.status_code == 200


def _metric(text: str, name: str) -> float:
    [value] = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(f"{name} ")]
    return value


async def test_max_retained_bytes_bounds_what_all_topics_hold(start_server: StartServer) -> None:
    server = start_server("--max-message-size", "64KiB", "--max-retained-bytes", "8MiB")
    cache = create_cache(server)
    before = _rss(server)

    await _fill_and_read_every_topic(server, cache)
    grown = _rss(server) - before
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        metrics = (await http.get("/metrics")).text

    # 40 MiB of values were published, and gRPC and JSON encodings of what was read were cached: without the
    # budget the server holds ~100 MiB more. With it, retention holds at most 8 MiB (plus one message).
    assert _metric(metrics, "tidings_retained_bytes") <= 8 * MiB + 200 * 1024
    assert _metric(metrics, "tidings_retained_bytes_trimmed_total") > 0
    assert grown < 40 * MiB, f"RSS grew by {grown / MiB:.0f} MiB"


async def _read_over_grpc_and_sse(server: ServerProcess, cache: str, topic: str, last: int) -> None:
    """Read everything ``topic`` retains over gRPC and over SSE, caching both encodings of every message."""
    async with grpc.aio.insecure_channel(server.endpoint) as channel:
        reader = await open_subscription(cachepubsub_pb2_grpc.PubsubStub(channel), cache, topic, resume_at=1)
        while (await read_non_heartbeat(reader)).item.topic_sequence_number != last:
            pass
        reader.cancel()
    async with (
        httpx.AsyncClient(base_url=server.http_url, timeout=30) as http,
        http.stream("GET", f"/topics/{cache}/{topic}/events", params={"sequence_number": 1}) as stream,
    ):
        async for line in stream.aiter_lines():
            if line.startswith("id: ") and line.endswith(f":{last}"):
                break


async def _oldest_resumable(server: ServerProcess, cache: str, topic: str) -> int:
    """The sequence number a subscriber resuming from 1 continues at (after the discontinuity it gets)."""
    async with grpc.aio.insecure_channel(server.endpoint) as channel:
        call = await open_subscription(cachepubsub_pb2_grpc.PubsubStub(channel), cache, topic, resume_at=1)
        gap = await read_non_heartbeat(call)
        call.cancel()
    assert gap.WhichOneof("kind") == "discontinuity"
    return int(gap.discontinuity.new_topic_sequence) + 1


async def test_resume_depth_does_not_depend_on_which_transports_read_the_topic(start_server: StartServer) -> None:
    # Arrange: 300 values of 4,000 bytes in each of two topics under 1 MiB each (262 fit), 2 MiB in all.
    server = start_server("--retention-size", "1MiB", "--max-retained-bytes", "2MiB")
    cache = create_cache(server)
    async with grpc.aio.insecure_channel(server.endpoint) as channel:
        stub = cachepubsub_pb2_grpc.PubsubStub(channel)
        for i in range(300):
            for topic in ("read", "unread"):
                await publish(stub, cache, topic, f"{i:04d}".ljust(4000, "v"))

    # Act: one topic is read over gRPC and SSE, which caches both encodings (and the JSON) of each message.
    await _read_over_grpc_and_sse(server, cache, "read", 300)

    # Assert: both keep the same 262 messages, and what retention holds, every encoding counted, stays
    # within --max-retained-bytes: encodings were dropped, not messages.
    assert await _oldest_resumable(server, cache, "read") == await _oldest_resumable(server, cache, "unread") == 39
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        metrics = (await http.get("/metrics")).text
    assert _metric(metrics, "tidings_retained_bytes") <= 2 * MiB
    assert _metric(metrics, "tidings_retained_bytes_trimmed_total") == 0
