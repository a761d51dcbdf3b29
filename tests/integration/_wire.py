"""Helpers for talking the raw wire protocol in tests."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import grpc
import grpc.aio
from momento_wire_types import cachepubsub_pb2 as pb
from momento_wire_types import cachepubsub_pb2_grpc

READ_TIMEOUT = 10.0


def text(value: str) -> pb._TopicValue:
    return pb._TopicValue(text=value)


async def publish(stub: cachepubsub_pb2_grpc.PubsubStub, cache: str, topic: str, value: str | bytes) -> None:
    topic_value = pb._TopicValue(text=value) if isinstance(value, str) else pb._TopicValue(binary=value)
    await stub.Publish(pb._PublishRequest(cache_name=cache, topic=topic, value=topic_value), timeout=READ_TIMEOUT)


def subscribe(stub: cachepubsub_pb2_grpc.PubsubStub, cache: str, topic: str, resume_at: int = 0, page: int = 0) -> Any:
    """Open a Subscribe stream (the call object: ``await call.read()``)."""
    return stub.Subscribe(
        pb._SubscriptionRequest(
            cache_name=cache, topic=topic, resume_at_topic_sequence_number=resume_at, sequence_page=page
        )
    )


async def read(call: Any, within: float = READ_TIMEOUT) -> pb._SubscriptionItem:
    """The next stream message; fails the test if none arrives ``within`` seconds."""
    item = await asyncio.wait_for(call.read(), within)
    assert item is not grpc.aio.EOF, "stream ended"  # type: ignore[attr-defined]  # missing from grpc-stubs
    return item  # type: ignore[no-any-return]


async def open_subscription(
    stub: cachepubsub_pb2_grpc.PubsubStub, cache: str, topic: str, resume_at: int = 0, page: int = 0
) -> Any:
    """Subscribe and consume the first message, which must be a heartbeat."""
    call = subscribe(stub, cache, topic, resume_at, page)
    first = await read(call)
    assert first.WhichOneof("kind") == "heartbeat"
    return call


async def read_items(call: Any, count: int) -> list[pb._TopicItem]:
    """The next ``count`` items, skipping heartbeats; fails on a discontinuity."""
    items: list[pb._TopicItem] = []
    while len(items) < count:
        message = await read(call)
        kind = message.WhichOneof("kind")
        assert kind != "discontinuity", message
        if kind == "item":
            items.append(message.item)
    return items


async def read_non_heartbeat(call: Any) -> pb._SubscriptionItem:
    """The next item or discontinuity."""
    while True:
        message = await read(call)
        if message.WhichOneof("kind") != "heartbeat":
            return message


async def status_of(call: Any) -> grpc.aio.AioRpcError:
    """Read until the stream fails and return its error."""
    try:
        while True:
            message = await asyncio.wait_for(call.read(), READ_TIMEOUT)
            assert message is not grpc.aio.EOF, "stream ended with OK"  # type: ignore[attr-defined]  # missing from grpc-stubs
    except grpc.aio.AioRpcError as error:
        return error
    raise AssertionError("unreachable")


def trailing_err(error: grpc.aio.AioRpcError) -> str | None:
    """The ``err`` trailing metadata value of a failed call."""
    # (key, value) pairs at run time; grpc-stubs says `_Metadatum`s.
    for key, value in cast("tuple[tuple[str, str | bytes], ...]", error.trailing_metadata() or ()):
        if key == "err":
            return str(value)
    return None
