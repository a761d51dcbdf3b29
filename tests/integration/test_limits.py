"""Configured limits: each exceeded limit answers its status and ``err``, and the server keeps serving."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import grpc.aio
import pytest
from momento_wire_types import cachepubsub_pb2_grpc, controlclient_pb2, controlclient_pb2_grpc

from tests.integration._server import ServerProcess
from tests.integration._wire import open_subscription, publish, read_items, status_of, subscribe, trailing_err
from tests.integration.conftest import create_cache

StartServer = Callable[..., ServerProcess]


async def test_subscriptions_per_cache_limit_and_release_on_cancel(start_server: StartServer) -> None:
    server = start_server("--max-subscriptions-per-cache", "2")
    cache, other_cache = create_cache(server), create_cache(server)
    async with grpc.aio.insecure_channel(server.endpoint) as channel:
        stub = cachepubsub_pb2_grpc.PubsubStub(channel)
        first = await open_subscription(stub, cache, "a")
        await open_subscription(stub, cache, "b")

        refused = await status_of(subscribe(stub, cache, "c"))
        other = await open_subscription(stub, other_cache, "a")  # the limit is per cache
        first.cancel()
        # The server frees a cancelled subscription at once; retry until it has seen the cancel.
        for _ in range(100):
            retry = subscribe(stub, cache, "c")
            message = await retry.read()
            if message is not grpc.aio.EOF:  # type: ignore[attr-defined]  # missing from grpc-stubs
                break
        else:
            pytest.fail("the cancelled subscription was never released")
        other.cancel()

    assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert trailing_err(refused) == "topic_subscriptions_limit_exceeded"
    assert message.WhichOneof("kind") == "heartbeat"


async def test_publish_rate_limit_refuses_excess_and_keeps_serving(start_server: StartServer) -> None:
    server = start_server("--publish-rate", "5")
    cache = create_cache(server)
    async with grpc.aio.insecure_channel(server.endpoint) as channel:
        stub = cachepubsub_pb2_grpc.PubsubStub(channel)
        call = await open_subscription(stub, cache, "t")
        errors: list[grpc.aio.AioRpcError] = []
        accepted = 0
        for i in range(20):
            try:
                await publish(stub, cache, "t", f"m{i}")
                accepted += 1
            except grpc.aio.AioRpcError as error:
                errors.append(error)
        items = await read_items(call, accepted)
        call.cancel()

    assert 5 <= accepted < 20
    assert {e.code() for e in errors} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert {trailing_err(e) for e in errors} == {"operations_rate_limit_exceeded"}
    # Refused publishes consumed no sequence numbers.
    assert [i.topic_sequence_number for i in items] == list(range(1, accepted + 1))


async def test_max_caches_limit(start_server: StartServer) -> None:
    server = start_server("--max-caches", "2")
    create_cache(server, "one")
    create_cache(server, "two")
    async with grpc.aio.insecure_channel(server.endpoint) as channel:
        control = controlclient_pb2_grpc.ScsControlStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await control.CreateCache(controlclient_pb2._CreateCacheRequest(cache_name="three"), timeout=10)
        await control.DeleteCache(controlclient_pb2._DeleteCacheRequest(cache_name="one"), timeout=10)
        await control.CreateCache(controlclient_pb2._CreateCacheRequest(cache_name="three"), timeout=10)

    assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert trailing_err(error.value) == "cache_count_limit_exceeded"


async def test_configured_max_message_size(start_server: StartServer) -> None:
    server = start_server("--max-message-size", "1KiB")
    cache = create_cache(server)
    async with grpc.aio.insecure_channel(server.endpoint) as channel:
        stub = cachepubsub_pb2_grpc.PubsubStub(channel)
        await publish(stub, cache, "t", "x" * 1024)
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await publish(stub, cache, "t", "é" * 513)  # 1,026 bytes of UTF-8 in 513 characters

    assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert trailing_err(error.value) == "request_size_limit_exceeded"


async def test_retention_bytes_bound_drops_oldest(start_server: StartServer) -> None:
    server = start_server("--retention-size", "8KiB")
    cache = create_cache(server)
    async with grpc.aio.insecure_channel(server.endpoint) as channel:
        stub = cachepubsub_pb2_grpc.PubsubStub(channel)
        probe = await open_subscription(stub, cache, "t")
        for i in range(1, 6):
            await publish(stub, cache, "t", f"{i}" * 3000)
        page = (await read_items(probe, 5))[0].sequence_page
        probe.cancel()

        call = await open_subscription(stub, cache, "t", resume_at=1, page=page)
        message = await call.read()
        while message.WhichOneof("kind") == "heartbeat":
            message = await call.read()
        call.cancel()

    # 8 KiB holds two 3,000-byte values, 4 and 5, also after the probe read them over gRPC: the encodings cached
    # then (another ~3,000 bytes each) are dropped before any message is.
    assert message.WhichOneof("kind") == "discontinuity"
    assert message.discontinuity.new_topic_sequence == 3
