"""PROTOCOL.md rules over real sockets with raw ``momento_wire_types`` stubs (what the official SDK hides)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc
import grpc.aio
import pytest
from momento_wire_types import cachepubsub_pb2 as pb
from momento_wire_types import cachepubsub_pb2_grpc, controlclient_pb2, controlclient_pb2_grpc

from tests.integration._server import ServerProcess
from tests.integration._wire import (
    open_subscription,
    publish,
    read,
    read_items,
    read_non_heartbeat,
    status_of,
    subscribe,
    trailing_err,
)
from tests.integration.conftest import HEARTBEAT_INTERVAL, create_cache

Stub = cachepubsub_pb2_grpc.PubsubStub


async def test_subscribe_first_message_is_heartbeat(pubsub: Stub, cache: str) -> None:
    call = subscribe(pubsub, cache, "t")

    first = await read(call)

    assert first.WhichOneof("kind") == "heartbeat"
    call.cancel()


async def test_publish_numbers_from_one_in_one_nonzero_page(pubsub: Stub, cache: str) -> None:
    call = await open_subscription(pubsub, cache, "t")

    for i in range(3):
        await publish(pubsub, cache, "t", f"m{i}")
    items = await read_items(call, 3)

    assert [item.topic_sequence_number for item in items] == [1, 2, 3]
    assert [item.value.text for item in items] == ["m0", "m1", "m2"]
    assert items[0].sequence_page > 0
    assert {item.sequence_page for item in items} == {items[0].sequence_page}
    assert {item.publisher_id for item in items} == {""}
    call.cancel()


async def test_publish_binary_arrives_as_binary(pubsub: Stub, cache: str) -> None:
    call = await open_subscription(pubsub, cache, "t")

    await publish(pubsub, cache, "t", b"\x00\xffbytes")
    [item] = await read_items(call, 1)

    assert item.value.WhichOneof("kind") == "binary"
    assert item.value.binary == b"\x00\xffbytes"
    call.cancel()


async def test_subscribers_see_same_page_and_sequence_in_same_order(pubsub: Stub, cache: str) -> None:
    calls = [await open_subscription(pubsub, cache, "t") for _ in range(3)]

    for i in range(20):
        await publish(pubsub, cache, "t", f"m{i}")
    seen = [[(i.sequence_page, i.topic_sequence_number, i.value.text) for i in await read_items(c, 20)] for c in calls]

    assert seen[0] == seen[1] == seen[2]
    assert [seq for _, seq, _ in seen[0]] == list(range(1, 21))
    for call in calls:
        call.cancel()


async def test_subscribe_without_position_starts_with_the_latest_message(pubsub: Stub, cache: str) -> None:
    await publish(pubsub, cache, "t", "older")
    await publish(pubsub, cache, "t", "before")
    call = await open_subscription(pubsub, cache, "t", resume_at=0)

    await publish(pubsub, cache, "t", "after")
    items = await read_items(call, 2)

    assert [(i.value.text, i.topic_sequence_number) for i in items] == [("before", 2), ("after", 3)]
    call.cancel()


async def test_resume_replays_retained_from_sequence_then_goes_live(pubsub: Stub, cache: str) -> None:
    first = await open_subscription(pubsub, cache, "t")
    for i in range(1, 6):
        await publish(pubsub, cache, "t", f"m{i}")
    page = (await read_items(first, 5))[0].sequence_page
    first.cancel()

    resumed = await open_subscription(pubsub, cache, "t", resume_at=3, page=page)
    replayed = await read_items(resumed, 3)
    await publish(pubsub, cache, "t", "m6")
    [live] = await read_items(resumed, 1)

    assert [i.topic_sequence_number for i in replayed] == [3, 4, 5]
    assert (live.topic_sequence_number, live.value.text) == (6, "m6")
    resumed.cancel()


async def test_resume_with_unknown_page_replays_from_sequence(pubsub: Stub, cache: str) -> None:
    for i in range(1, 4):
        await publish(pubsub, cache, "t", f"m{i}")

    call = await open_subscription(pubsub, cache, "t", resume_at=2, page=0)
    items = await read_items(call, 2)

    assert [i.value.text for i in items] == ["m2", "m3"]
    call.cancel()


async def test_resume_from_future_gets_discontinuity_to_current_position(pubsub: Stub, cache: str) -> None:
    probe = await open_subscription(pubsub, cache, "t")
    for i in range(1, 4):
        await publish(pubsub, cache, "t", f"m{i}")
    page = (await read_items(probe, 3))[0].sequence_page
    probe.cancel()

    call = await open_subscription(pubsub, cache, "t", resume_at=10, page=page)
    gap = await read_non_heartbeat(call)
    await publish(pubsub, cache, "t", "m4")
    [item] = await read_items(call, 1)

    assert gap.WhichOneof("kind") == "discontinuity"
    assert (gap.discontinuity.last_topic_sequence, gap.discontinuity.new_topic_sequence) == (9, 3)
    assert gap.discontinuity.new_sequence_page == page
    assert item.topic_sequence_number == 4
    call.cancel()


async def test_resume_from_stale_page_gets_discontinuity_and_current_page(pubsub: Stub, cache: str) -> None:
    probe = await open_subscription(pubsub, cache, "t")
    for i in range(1, 3):
        await publish(pubsub, cache, "t", f"m{i}")
    page = (await read_items(probe, 2))[0].sequence_page
    probe.cancel()

    call = await open_subscription(pubsub, cache, "t", resume_at=7, page=page - 1)
    gap = await read_non_heartbeat(call)
    items = await read_items(call, 2)

    assert gap.WhichOneof("kind") == "discontinuity"
    assert gap.discontinuity.last_topic_sequence == 6
    assert gap.discontinuity.new_topic_sequence == 0
    assert gap.discontinuity.new_sequence_page == page
    assert [(i.topic_sequence_number, i.sequence_page) for i in items] == [(1, page), (2, page)]
    call.cancel()


async def test_resume_from_dropped_range_gets_discontinuity_then_oldest_retained(
    start_server: object,
) -> None:
    server: ServerProcess = start_server("--retention-messages", "5")  # type: ignore[operator]
    cache = create_cache(server)
    async with grpc.aio.insecure_channel(server.endpoint) as channel:
        stub = Stub(channel)
        probe = await open_subscription(stub, cache, "t")
        for i in range(1, 11):
            await publish(stub, cache, "t", f"m{i}")
        page = (await read_items(probe, 10))[0].sequence_page
        probe.cancel()

        call = await open_subscription(stub, cache, "t", resume_at=2, page=page)
        gap = await read_non_heartbeat(call)
        items = await read_items(call, 5)

    assert (gap.discontinuity.last_topic_sequence, gap.discontinuity.new_topic_sequence) == (1, 5)
    assert [i.topic_sequence_number for i in items] == [6, 7, 8, 9, 10]


async def test_idle_stream_gets_heartbeats_at_the_interval(pubsub: Stub, cache: str) -> None:
    call = await open_subscription(pubsub, cache, "t")
    started = time.monotonic()

    second = await read(call)
    elapsed = time.monotonic() - started

    assert second.WhichOneof("kind") == "heartbeat"
    assert HEARTBEAT_INTERVAL * 0.9 <= elapsed <= HEARTBEAT_INTERVAL * 3
    call.cancel()


async def test_idle_subscription_outlives_many_client_keepalive_pings(start_server: Any) -> None:
    # Heartbeats only every 30 s: the stream carries no data while the client pings every 200 ms. A server
    # that limited pings (grpcio's default strikes) would answer GOAWAY too_many_pings and end the stream.
    server: ServerProcess = start_server("--heartbeat-interval", "30")
    cache = create_cache(server)
    options = [
        ("grpc.keepalive_time_ms", 200),
        ("grpc.keepalive_timeout_ms", 5000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
    ]
    async with grpc.aio.insecure_channel(server.endpoint, options=options) as channel:
        stub = Stub(channel)
        call = await open_subscription(stub, cache, "t")
        # Silence for a while: about 15 keepalive pings, no data either way.
        await asyncio.sleep(3)
        await publish(stub, cache, "t", "still here")
        [item] = await read_items(call, 1)
        call.cancel()

    assert item.value.text == "still here"


@pytest.mark.parametrize(
    ("cache_name", "topic", "field"),
    [
        ("", "t", "cache_name"),
        ("CACHE", "", "topic_name"),
        ("x" * 256, "t", "cache_name"),
        ("CACHE", "é" * 128, "topic_name"),
        ("CACHE", "bad\nname", "topic_name"),
        ("bad\x00name", "t", "cache_name"),
        ("CACHE", "del\x7f", "topic_name"),
    ],
    ids=["empty-cache", "empty-topic", "long-cache", "long-topic-multibyte", "newline", "nul", "del"],
)
async def test_bad_names_are_invalid_argument_naming_the_field(
    pubsub: Stub, cache: str, cache_name: str, topic: str, field: str
) -> None:
    cache_name = cache_name.replace("CACHE", cache)

    with pytest.raises(grpc.aio.AioRpcError) as publish_error:
        await publish(pubsub, cache_name, topic, "v")
    subscribe_error = await status_of(subscribe(pubsub, cache_name, topic))

    for error in (publish_error.value, subscribe_error):
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in (error.details() or "")


async def test_name_of_255_bytes_is_accepted(pubsub: Stub, cache: str) -> None:
    await publish(pubsub, cache, "é" * 127 + "x", "v")  # 255 bytes of UTF-8


@pytest.mark.parametrize(
    "value",
    [None, pb._TopicValue(), pb._TopicValue(text=""), pb._TopicValue(binary=b"")],
    ids=["no-value", "no-kind", "empty-text", "empty-binary"],
)
async def test_publish_without_value_is_invalid_argument(
    pubsub: Stub, cache: str, value: pb._TopicValue | None
) -> None:
    request = pb._PublishRequest(cache_name=cache, topic="t", value=value)

    with pytest.raises(grpc.aio.AioRpcError) as error:
        await pubsub.Publish(request, timeout=10)

    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "value" in (error.value.details() or "")


async def _call_publish(channel: grpc.aio.Channel, request: bytes) -> None:
    await channel.unary_unary("/cache_client.pubsub.Pubsub/Publish", None, None)(request, timeout=10)


async def _call_subscribe(channel: grpc.aio.Channel, request: bytes) -> None:
    async for _ in channel.unary_stream("/cache_client.pubsub.Pubsub/Subscribe", None, None)(request, timeout=10):
        pass


@pytest.mark.parametrize("call", [_call_publish, _call_subscribe], ids=["publish", "subscribe"])
async def test_malformed_request_is_invalid_argument(channel: grpc.aio.Channel, call: Any) -> None:
    garbage = b"\x0a\xff\xff\xff\xff\x0f"  # a length-delimited field that runs past the end

    with pytest.raises(grpc.aio.AioRpcError) as error:
        await call(channel, garbage)

    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "malformed" in (error.value.details() or "")


async def test_invalid_utf8_name_is_invalid_argument(channel: grpc.aio.Channel, cache: str) -> None:
    # Field 1 (cache_name) holding bytes that are not UTF-8.
    request = b"\x0a\x02\xc3\x28" + pb._PublishRequest(topic="t", value=pb._TopicValue(text="v")).SerializeToString()

    with pytest.raises(grpc.aio.AioRpcError) as error:
        await _call_publish(channel, request)

    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_oversized_payload_is_resource_exhausted_with_err(pubsub: Stub, cache: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await publish(pubsub, cache, "t", b"x" * 4097)

    assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert trailing_err(error.value) == "request_size_limit_exceeded"
    await publish(pubsub, cache, "t", b"x" * 4096)  # the limit itself is fine, and the server still serves


async def test_payload_over_the_receive_limit_is_refused_before_it_is_read(pubsub: Stub, cache: str) -> None:
    # Over --max-message-size + 64 KiB of envelope, grpcio refuses the request itself (without our `err`).
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await publish(pubsub, cache, "t", b"x" * (5 * 1024 * 1024))

    assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    await publish(pubsub, cache, "t", b"x" * 4096)  # and the server still serves


async def test_unknown_cache_is_not_found(pubsub: Stub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as publish_error:
        await publish(pubsub, "no-such-cache", "t", "v")
    subscribe_error = await status_of(subscribe(pubsub, "no-such-cache", "t"))

    assert publish_error.value.code() == grpc.StatusCode.NOT_FOUND
    assert subscribe_error.code() == grpc.StatusCode.NOT_FOUND


async def test_deleting_cache_ends_its_streams_with_not_found(
    server: ServerProcess, pubsub: Stub, channel: grpc.aio.Channel
) -> None:
    cache = create_cache(server)
    call = await open_subscription(pubsub, cache, "t")

    await controlclient_pb2_grpc.ScsControlStub(channel).DeleteCache(
        controlclient_pb2._DeleteCacheRequest(cache_name=cache), timeout=10
    )
    error = await status_of(call)

    assert error.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as publish_error:
        await publish(pubsub, cache, "t", "v")
    assert publish_error.value.code() == grpc.StatusCode.NOT_FOUND


async def test_slow_subscriber_does_not_delay_fast_one_and_gets_discontinuity(
    start_server: object,
) -> None:
    server: ServerProcess = start_server("--retention-messages", "50")  # type: ignore[operator]
    cache = create_cache(server)
    payload = "x" * 4000
    count = 1500  # ~6 MB: far more than the slow stream's flow-control windows hold
    async with (
        grpc.aio.insecure_channel(server.endpoint) as fast_channel,
        grpc.aio.insecure_channel(server.endpoint) as slow_channel,
    ):
        fast = await open_subscription(Stub(fast_channel), cache, "t")
        slow = await open_subscription(Stub(slow_channel), cache, "t")
        publisher = Stub(fast_channel)

        async def publish_all() -> None:
            for i in range(1, count + 1):
                await publish(publisher, cache, "t", f"{i}:{payload}")

        publishing = asyncio.create_task(publish_all())
        fast_items = await read_items(fast, count)
        await publishing
        # Only now does the slow subscriber start reading.
        slow_seen: list[pb._SubscriptionItem] = []
        while not slow_seen or slow_seen[-1].item.topic_sequence_number != count:
            slow_seen.append(await read_non_heartbeat(slow))
        fast.cancel()
        slow.cancel()

    assert [i.topic_sequence_number for i in fast_items] == list(range(1, count + 1))
    gaps = [m.discontinuity for m in slow_seen if m.WhichOneof("kind") == "discontinuity"]
    assert gaps, "the slow subscriber fell behind the 50-message retention and must be told"
    slow_numbers = [m.item.topic_sequence_number for m in slow_seen if m.WhichOneof("kind") == "item"]
    assert slow_numbers == sorted(set(slow_numbers))  # in order, no duplicates
    after_gap = slow_seen.index(next(m for m in slow_seen if m.WhichOneof("kind") == "discontinuity"))
    assert slow_seen[after_gap + 1].item.topic_sequence_number == gaps[0].new_topic_sequence + 1


async def test_unimplemented_control_methods_answer_unimplemented(channel: grpc.aio.Channel) -> None:
    stub = controlclient_pb2_grpc.ScsControlStub(channel)

    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stub.FlushCache(controlclient_pb2._FlushCacheRequest(cache_name="x"), timeout=10)

    assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_ping_answers_ok(channel: grpc.aio.Channel) -> None:
    response = await channel.unary_unary("/cache_client.Ping/Ping", None, None)(b"", timeout=10)

    assert response == b""


async def test_list_caches_reports_topic_limits(channel: grpc.aio.Channel, cache: str) -> None:
    response = await controlclient_pb2_grpc.ScsControlStub(channel).ListCaches(
        controlclient_pb2._ListCachesRequest(), timeout=10
    )

    [listed] = [c for c in response.cache if c.cache_name == cache]
    assert listed.topic_limits.max_publish_message_size_kb == 4
    assert listed.topic_limits.max_subscription_count == 10_000
