"""Momento Local's fault-injection protocol (``--fault-injection``) through raw stubs, the official Python and
Node SDKs and ours: errors, delays and broken streams, counted per ``request-id``; ignored when off."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest
from momento import CacheClient, Configurations, CredentialProvider
from momento.config.middleware import MiddlewareMessage, MiddlewareRequestHandlerContext, MiddlewareStatus
from momento.config.middleware.synchronous import Middleware, MiddlewareMetadata, MiddlewareRequestHandler
from momento.errors import MomentoErrorCode
from momento.responses import CreateCache
from momento_wire_types import cachepubsub_pb2 as pb
from momento_wire_types import cachepubsub_pb2_grpc

from tests.integration._server import ServerProcess
from tests.integration._wire import open_subscription, publish, read, read_items, status_of, text
from tests.integration.conftest import create_cache
from tests.integration.test_official_node_sdk import node_subscriber, run_node
from tidings import ErrorCode, TopicClientAsync, TopicPublish, TopicSubscribe, TopicSubscriptionItem

StartServer = Callable[..., ServerProcess]
Metadata = tuple[tuple[str, str], ...]


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One server with --fault-injection for the module."""
    process = ServerProcess(tmp_path_factory.mktemp("faulty"), ("--fault-injection",)).start()
    yield process
    assert process.stop() == 0, "".join(process.log)


async def _publish_all(server: ServerProcess, cache: str, metadata: Metadata, count: int) -> list[str]:
    """Publish ``count`` times with ``metadata``; the status of each call ("OK" or the code's name)."""
    outcomes = []
    async with grpc.aio.insecure_channel(server.endpoint) as channel:
        stub = cachepubsub_pb2_grpc.PubsubStub(channel)
        for i in range(count):
            request = pb._PublishRequest(cache_name=cache, topic="t", value=text(f"m{i}"))
            try:
                await stub.Publish(request, metadata=metadata, timeout=10)
                outcomes.append("OK")
            except grpc.aio.AioRpcError as error:
                outcomes.append(error.code().name)
    return outcomes


async def test_error_count_fails_exactly_that_many_calls_per_request_id(faulty: ServerProcess) -> None:
    cache = create_cache(faulty)
    plan = (("return-error", "unavailable"), ("error-rpcs", "topic-publish"), ("error-count", "2"))

    first = await _publish_all(faulty, cache, (("request-id", "a"), *plan), 4)
    second = await _publish_all(faulty, cache, (("request-id", "b"), *plan), 3)
    again = await _publish_all(faulty, cache, (("request-id", "a"), *plan), 1)

    assert first == ["UNAVAILABLE", "UNAVAILABLE", "OK", "OK"]
    assert second == ["UNAVAILABLE", "UNAVAILABLE", "OK"]
    assert again == ["OK"]


async def test_return_error_without_count_fails_every_matching_call_and_spares_others(faulty: ServerProcess) -> None:
    cache = create_cache(faulty)
    metadata = (("request-id", "all"), ("return-error", "resource-exhausted"), ("error-rpcs", "topic-subscribe"))

    publishes = await _publish_all(faulty, cache, metadata, 3)
    async with grpc.aio.insecure_channel(faulty.endpoint) as channel:
        call = cachepubsub_pb2_grpc.PubsubStub(channel).Subscribe(
            pb._SubscriptionRequest(cache_name=cache, topic="t"), metadata=metadata
        )
        error = await status_of(call)

    assert publishes == ["OK", "OK", "OK"]
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_delay_longer_than_the_deadline_times_the_call_out(faulty: ServerProcess) -> None:
    cache = create_cache(faulty)
    metadata = (("request-id", "slow"), ("delay-rpcs", "topic-publish"), ("delay-ms", "1500"), ("delay-count", "1"))
    async with grpc.aio.insecure_channel(faulty.endpoint) as channel:
        stub = cachepubsub_pb2_grpc.PubsubStub(channel)
        request = pb._PublishRequest(cache_name=cache, topic="t", value=text("x"))
        with pytest.raises(grpc.aio.AioRpcError) as timed_out:
            await stub.Publish(request, metadata=metadata, timeout=0.5)
        await stub.Publish(request, metadata=metadata, timeout=0.5)  # the one delay is used up

    assert timed_out.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_stream_error_ends_the_stream_after_the_message_limit(faulty: ServerProcess) -> None:
    cache = create_cache(faulty)
    metadata = (("stream-error", "unavailable"), ("stream-error-message-limit", "3"))
    async with grpc.aio.insecure_channel(faulty.endpoint) as channel:
        stub = cachepubsub_pb2_grpc.PubsubStub(channel)
        for i in range(1, 6):
            await publish(stub, cache, "t", f"m{i}")
        call = stub.Subscribe(
            pb._SubscriptionRequest(cache_name=cache, topic="t", resume_at_topic_sequence_number=1), metadata=metadata
        )
        first = await read(call)
        items = await read_items(call, 3)
        error = await status_of(call)

    assert first.WhichOneof("kind") == "heartbeat"  # heartbeats are not counted as messages
    assert [i.topic_sequence_number for i in items] == [1, 2, 3]
    assert (error.code(), error.details()) == (
        grpc.StatusCode.UNAVAILABLE,
        "injected stream error after 3 messages",
    )


@pytest.mark.parametrize(
    ("header", "value"),
    [("return-error", "teapot"), ("error-rpcs", "topic-publish get"), ("delay-ms", "soon")],
)
async def test_unknown_fault_values_are_invalid_argument_naming_the_header(
    faulty: ServerProcess, header: str, value: str
) -> None:
    cache = create_cache(faulty)

    [outcome] = await _publish_all(faulty, cache, ((header, value),), 1)
    async with grpc.aio.insecure_channel(faulty.endpoint) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await cachepubsub_pb2_grpc.PubsubStub(channel).Publish(
                pb._PublishRequest(cache_name=cache, topic="t", value=text("x")), metadata=((header, value),)
            )

    assert outcome == "INVALID_ARGUMENT"
    assert refused.value.details().startswith(f"{header}: ")


async def test_fault_headers_are_ignored_without_the_flag(server: ServerProcess, cache: str) -> None:
    metadata = (("return-error", "unavailable"), ("delay-ms", "5000"), ("stream-error", "not-found"))

    outcomes = await _publish_all(server, cache, metadata, 2)
    async with grpc.aio.insecure_channel(server.endpoint) as channel:
        stub = cachepubsub_pb2_grpc.PubsubStub(channel)
        call = await open_subscription(stub, cache, "t", resume_at=1)
        items = await read_items(call, 2)
        call.cancel()

    assert outcomes == ["OK", "OK"]
    assert [i.topic_sequence_number for i in items] == [1, 2]


def test_fault_injection_is_refused_with_require_auth_unless_allowed(start_server: StartServer, tmp_path: Path) -> None:
    refused = subprocess.run(
        [sys.executable, "-m", "tidings", "server", "--data-dir", str(tmp_path), "--fault-injection", "--require-auth"],
        capture_output=True,
        text=True,
        timeout=60,
    )

    allowed = start_server("--fault-injection", "--require-auth", "--allow-fault-injection-with-auth")

    assert refused.returncode == 2
    assert "--allow-fault-injection-with-auth" in refused.stderr
    assert any("FAULT INJECTION IS ON" in line for line in allowed.log)


# --- our SDK ----------------------------------------------------------------------------------------------


async def test_our_sdk_sends_fault_headers_and_resumes_through_broken_streams(faulty: ServerProcess) -> None:
    cache = create_cache(faulty)
    errors = {"request-id": "ours", "return-error": "unavailable", "error-rpcs": "topic-publish", "error-count": "2"}
    breaks = {"stream-error": "unavailable", "stream-error-message-limit": "2"}

    async with (
        TopicClientAsync(faulty.endpoint, headers=errors) as publisher,
        TopicClientAsync(faulty.endpoint, headers=breaks) as subscriber,
    ):
        subscription = await subscriber.subscribe(cache, "t")
        assert isinstance(subscription, TopicSubscribe.SubscriptionAsync)
        outcomes = [await publisher.publish(cache, "t", f"m{i}") for i in range(8)]
        received = [await asyncio.wait_for(anext(subscription), 20) for _ in range(6)]
        resubscriptions = subscription.statistics().resubscriptions
        subscription.unsubscribe()

    failed = [o.error_code for o in outcomes if isinstance(o, TopicPublish.Error)]
    assert failed == [ErrorCode.UNAVAILABLE, ErrorCode.UNAVAILABLE]
    assert all(isinstance(item, TopicSubscriptionItem.Text) for item in received)
    assert [item.value for item in received] == [f"m{i}" for i in range(2, 8)]  # type: ignore[union-attr]
    assert resubscriptions >= 2  # each stream ended after two messages; nothing lost or repeated across them


# --- the official Python SDK ------------------------------------------------------------------------------


class _FaultHeaders(MiddlewareRequestHandler):
    def __init__(self, headers: dict[str, str]) -> None:
        self._headers = headers

    def on_request_metadata(self, metadata: MiddlewareMetadata) -> MiddlewareMetadata:
        if metadata.grpc_metadata is not None:
            metadata.grpc_metadata.extend(self._headers.items())  # type: ignore[attr-defined]
        return metadata

    def on_request_body(self, request: MiddlewareMessage) -> MiddlewareMessage:
        return request

    def on_response_metadata(self, metadata: MiddlewareMetadata) -> MiddlewareMetadata:
        return metadata

    def on_response_body(self, response: MiddlewareMessage) -> MiddlewareMessage:
        return response

    def on_response_status(self, status: MiddlewareStatus) -> MiddlewareStatus:
        return status


class FaultMiddleware(Middleware):
    """Sends Momento Local's fault headers with every call, as Momento's own Python SDK tests do."""

    def __init__(self, headers: dict[str, str]) -> None:
        self._headers = headers

    def on_new_request(self, context: MiddlewareRequestHandlerContext) -> MiddlewareRequestHandler:
        return _FaultHeaders(self._headers)


def _official_cache_client(server: ServerProcess, headers: dict[str, str], timeout: float = 10) -> CacheClient:
    configuration = (
        Configurations.Laptop.v1()
        .with_client_timeout(timedelta(seconds=timeout))
        .with_middlewares([FaultMiddleware(headers)])
    )
    credentials = CredentialProvider.for_momento_local(server.host, server.port)
    return CacheClient(configuration, credentials, timedelta(seconds=60))


def test_official_python_sdk_sees_exactly_the_injected_failures(faulty: ServerProcess) -> None:
    headers = {"request-id": "py", "return-error": "unavailable", "error-rpcs": "create-cache", "error-count": "2"}

    with _official_cache_client(faulty, headers) as client:
        responses = [client.create_cache(f"py-fault-{i}") for i in range(3)]

    codes = [r.error_code if isinstance(r, CreateCache.Error) else type(r).__name__ for r in responses]
    assert codes == [MomentoErrorCode.SERVER_UNAVAILABLE, MomentoErrorCode.SERVER_UNAVAILABLE, "Success"]


def test_official_python_sdk_calls_wait_for_an_injected_delay(faulty: ServerProcess) -> None:
    # momento 1.29.1 gives control calls a fixed 60 s deadline (not the client timeout), so the delay shows as time.
    headers = {"request-id": "py-slow", "delay-rpcs": "create-cache", "delay-ms": "1500", "delay-count": "1"}

    with _official_cache_client(faulty, headers) as client:
        started = time.monotonic()
        slow = client.create_cache("py-slow-1")
        delayed = time.monotonic() - started
        fast = client.create_cache("py-slow-2")

    assert isinstance(slow, CreateCache.Success)
    assert isinstance(fast, CreateCache.Success)
    assert delayed >= 1.5


# --- the official Node SDK --------------------------------------------------------------------------------


def _node_fault(**metadata: object) -> str:
    return json.dumps(metadata)


def test_official_node_sdk_publish_fails_exactly_error_count_times(faulty: ServerProcess) -> None:
    cache = create_cache(faulty)
    fault = _node_fault(
        requestId="node-a", returnError="SERVER_UNAVAILABLE", errorRpcs=["_PublishRequest"], errorCount=2
    )

    lines = run_node(faulty, "publish", "--cache", cache, "--count", "4", "--fault", fault, "--keep-going")

    failures = [line["publish_error"] for line in lines if "publish_error" in line]
    assert [f["code"] for f in failures] == ["SERVER_UNAVAILABLE", "SERVER_UNAVAILABLE"]
    assert lines[-1] == {"published": 4}


def test_official_node_sdk_times_out_on_an_injected_delay(faulty: ServerProcess) -> None:
    cache = create_cache(faulty)
    # The Node SDK's publish deadline is 5 s by default.
    fault = _node_fault(requestId="node-slow", delayRpcs=["_PublishRequest"], delayMs=6500, delayCount=1)

    lines = run_node(faulty, "publish", "--cache", cache, "--count", "1", "--fault", fault, "--keep-going")

    [failure] = [line["publish_error"] for line in lines if "publish_error" in line]
    assert failure["code"] == "TIMEOUT_ERROR"


async def test_official_node_sdk_resubscribes_through_stream_errors_losing_nothing(faulty: ServerProcess) -> None:
    cache = create_cache(faulty)
    fault = _node_fault(streamError="unavailable", streamErrorRpcs=["_SubscriptionRequest"], streamErrorMessageLimit=3)

    async with (
        grpc.aio.insecure_channel(faulty.endpoint) as channel,
        node_subscriber(faulty, cache, "--count", "10", "--seconds", "60", "--fault", fault) as subscriber,
    ):
        stub = cachepubsub_pb2_grpc.PubsubStub(channel)
        for i in range(1, 11):
            await publish(stub, cache, "t", f"m{i}")
        exit_code = await subscriber.finish()

    items = subscriber.of_kind("item")
    assert exit_code == 0
    assert [(i["sequence_number"], i["value"]) for i in items] == [(n, f"m{n}") for n in range(1, 11)]
    assert subscriber.of_kind("discontinuity") == []
    assert len(subscriber.of_kind("subscribe_request")) >= 4  # the stream broke after every third item


async def test_official_node_sdk_stops_on_a_not_found_stream_error(faulty: ServerProcess) -> None:
    cache = create_cache(faulty)
    fault = _node_fault(streamError="not-found", streamErrorRpcs=["_SubscriptionRequest"], streamErrorMessageLimit=1)

    async with (
        grpc.aio.insecure_channel(faulty.endpoint) as channel,
        node_subscriber(faulty, cache, "--count", "5", "--seconds", "30", "--fault", fault) as subscriber,
    ):
        await publish(cachepubsub_pb2_grpc.PubsubStub(channel), cache, "t", "only")
        exit_code = await subscriber.finish()

    [error] = subscriber.of_kind("error")
    assert exit_code == 1
    assert error["code"] == "NOT_FOUND_ERROR"
    assert [i["value"] for i in subscriber.of_kind("item")] == ["only"]
    assert len(subscriber.of_kind("subscribe_request")) == 1  # not retried
