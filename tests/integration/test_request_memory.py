"""Unauthenticated callers cannot make the server hold large requests, and bursts leave no lasting memory
(issue 11, item 3). Memory is the server process's resident size, read from /proc."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

import grpc
import grpc.aio
import pytest
from momento_wire_types import cachepubsub_pb2 as pb
from momento_wire_types import cachepubsub_pb2_grpc

from tests.integration._server import ServerProcess
from tests.integration._wire import publish, trailing_err

StartServer = Callable[..., ServerProcess]
MIB = 1024 * 1024
# What the client may send: far over the server's limits.
CLIENT_OPTIONS = [("grpc.max_send_message_length", 64 * MIB)]


def resident_mib(server: ServerProcess) -> float:
    assert server.process is not None
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def _bad_token_burst(server: ServerProcess, size: int, calls: int) -> set[grpc.StatusCode]:
    """``calls`` concurrent publishes of ``size`` bytes with a bad token; the status codes they got."""
    request = pb._PublishRequest(cache_name="c", topic="t", value=pb._TopicValue(binary=b"x" * size))
    async with grpc.aio.insecure_channel(server.endpoint, options=CLIENT_OPTIONS) as channel:
        stub = cachepubsub_pb2_grpc.PubsubStub(channel)
        results = await asyncio.gather(
            *(stub.Publish(request, metadata=(("authorization", "bad"),), timeout=60) for _ in range(calls)),
            return_exceptions=True,
        )
    assert all(isinstance(result, grpc.aio.AioRpcError) for result in results), results
    return {result.code() for result in results if isinstance(result, grpc.aio.AioRpcError)}


async def test_oversized_unauthenticated_publishes_are_refused_without_being_buffered(
    start_server: StartServer,
) -> None:
    server = start_server("--require-auth", "--create-cache", "c")
    before = resident_mib(server)

    codes = set()
    for _ in range(3):
        codes |= await _bad_token_burst(server, 8_000_000, 100)
    grown = resident_mib(server) - before

    # Holding them would take 3 x 100 x 8 MB; the receive limit is --max-message-size + 64 KiB.
    assert grown < 128, f"resident size grew by {grown:.0f} MiB"
    # The h2 transport checks the token at the request's headers, before reading its body; grpcio reads the
    # body (up to the receive limit) first.
    h2 = os.environ.get("TIDINGS_GRPC_TRANSPORT", "h2") == "h2"
    assert codes == {grpc.StatusCode.UNAUTHENTICATED if h2 else grpc.StatusCode.RESOURCE_EXHAUSTED}


async def test_memory_goes_back_to_the_system_after_a_burst(start_server: StartServer) -> None:
    server = start_server("--require-auth", "--create-cache", "c", "--max-message-size", "1MiB", "--log-level", "debug")
    before = resident_mib(server)

    for _ in range(3):
        assert await _bad_token_burst(server, 1_000_000, 200) == {grpc.StatusCode.UNAUTHENTICATED}
    peak = resident_mib(server)
    # The server checks its size every few seconds; there is nothing to wait on but the size itself.
    for _ in range(60):
        after = resident_mib(server)
        if after - before <= 64:
            break
        await asyncio.sleep(0.5)

    trims = [line for line in server.log if "freed memory" in line]
    assert after - before <= 64, f"resident size {before:.0f} -> {peak:.0f} (peak) -> {after:.0f} MiB; {trims}"


@pytest.mark.parametrize("size", [4097, 4096 + 60 * 1024], ids=["just-over", "within-envelope-slack"])
async def test_value_over_the_limit_gets_request_size_limit_exceeded(
    pubsub: cachepubsub_pb2_grpc.PubsubStub, cache: str, size: int
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await publish(pubsub, cache, "t", b"x" * size)

    assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert trailing_err(error.value) == "request_size_limit_exceeded"
