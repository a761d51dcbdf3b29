"""A burst of Subscribe calls: grpc-core resets calls beyond ``--max-pending-calls`` (CANCELLED), and the SDK
subscribes through that, so thousands of concurrent subscribes all succeed."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable

import grpc
import grpc.aio
from momento_wire_types import cachepubsub_pb2 as pb
from momento_wire_types import cachepubsub_pb2_grpc

from tests.integration._server import ServerProcess
from tests.integration.conftest import create_cache
from tidings import TopicClientAsync, TopicSubscribe

StartServer = Callable[..., ServerProcess]


async def _raw_burst(server: ServerProcess, cache: str, count: int) -> collections.Counter[str]:
    """Open ``count`` Subscribe calls at once on one channel; how each one's first read ended."""
    async with grpc.aio.insecure_channel(server.endpoint) as channel:
        stub = cachepubsub_pb2_grpc.PubsubStub(channel)
        calls = [stub.Subscribe(pb._SubscriptionRequest(cache_name=cache, topic="raw")) for _ in range(count)]
        outcomes: collections.Counter[str] = collections.Counter()
        for call in calls:
            try:
                await call.read()
                outcomes["heartbeat"] += 1
            except grpc.aio.AioRpcError as error:
                outcomes[error.code().name] += 1
        for call in calls:
            call.cancel()
    return outcomes


async def _subscribe_all(server: ServerProcess, cache: str, count: int) -> collections.Counter[str]:
    """Open ``count`` subscriptions at once with one SDK client; how many of each outcome."""
    async with TopicClientAsync(server.endpoint, timeout=60) as client:
        results = await asyncio.gather(*(client.subscribe(cache, f"t{i % 20}") for i in range(count)))
        outcomes = collections.Counter(
            "subscribed" if isinstance(r, TopicSubscribe.SubscriptionAsync) else str(r) for r in results
        )
        for result in results:
            if isinstance(result, TopicSubscribe.SubscriptionAsync):
                result.unsubscribe()
    return outcomes


async def test_2500_concurrent_subscribes_all_succeed(start_server: StartServer) -> None:
    server = start_server()
    cache = create_cache(server)

    raw = await _raw_burst(server, cache, 2500)  # grpc-core's own limits (1,000 / 3,000) reset some of these
    outcomes = await _subscribe_all(server, cache, 2500)

    assert raw == {"heartbeat": 2500}
    assert outcomes == {"subscribed": 2500}


async def test_calls_beyond_the_pending_limit_are_reset_and_the_sdk_subscribes_through_it(
    start_server: StartServer,
) -> None:
    # --max-pending-calls is grpc-core's queue; the h2 transport takes each call as its request arrives.
    server = start_server("--grpc-transport", "grpcio", "--max-pending-calls", "20")
    cache = create_cache(server)
    assert any("up to 20 calls may wait" in line for line in server.log)

    raw = await _raw_burst(server, cache, 1000)  # grpc-core resets what is beyond the limit: CANCELLED
    sdk = await _subscribe_all(server, cache, 1000)

    assert raw["CANCELLED"] > 0, raw
    assert sdk == {"subscribed": 1000}
