"""Momento Local's fault-injection protocol (``--fault-injection``) through raw stubs, the official Python and
Node SDKs and ours: errors, delays and broken streams, counted per ``request-id``; ignored when off. And its
test-admin API (``--test-admin-port``): ``GET /block`` silences the gRPC port, ``GET /unblock`` restores it."""

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
import httpx
import pytest
from momento import CacheClient, Configurations, CredentialProvider
from momento.config.middleware import MiddlewareMessage, MiddlewareRequestHandlerContext, MiddlewareStatus
from momento.config.middleware.synchronous import Middleware, MiddlewareMetadata, MiddlewareRequestHandler
from momento.errors import MomentoErrorCode
from momento.responses import CreateCache
from momento_wire_types import cachepubsub_pb2 as pb
from momento_wire_types import cachepubsub_pb2_grpc

from tests.integration._server import ServerProcess
from tests.integration._wire import open_subscription, publish, read_items, status_of, text
from tests.integration.conftest import create_cache
from tests.integration.test_official_node_sdk import INTEROP, NodeSubscriber, node_subscriber, run_node
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


async def _collect_messages(call: Any, messages: list[pb._SubscriptionItem]) -> None:
    """Append every message of ``call`` to ``messages`` until the stream ends."""
    async for message in call:
        messages.append(message)


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
        messages: list[pb._SubscriptionItem] = []
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            await asyncio.wait_for(_collect_messages(call, messages), 10)

    # The first heartbeat counts, as Momento Local counts it.
    assert [m.WhichOneof("kind") for m in messages] == ["heartbeat", "item", "item"]
    assert [m.item.topic_sequence_number for m in messages[1:]] == [1, 2]
    assert (ended.value.code(), ended.value.details()) == (
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
    assert (refused.value.details() or "").startswith(f"{header}: ")


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


async def test_stream_error_counts_heartbeats_toward_the_message_limit(start_server: StartServer) -> None:
    # Momento's own retry tests subscribe, publish nothing and expect the error "after a couple of heartbeats".
    server = start_server("--fault-injection", "--heartbeat-interval", "0.2")
    cache = create_cache(server)
    metadata = (("stream-error", "unavailable"), ("stream-error-message-limit", "3"))
    messages: list[pb._SubscriptionItem] = []

    async with grpc.aio.insecure_channel(server.endpoint) as channel:
        call = cachepubsub_pb2_grpc.PubsubStub(channel).Subscribe(
            pb._SubscriptionRequest(cache_name=cache, topic="t"), metadata=metadata
        )
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            await asyncio.wait_for(_collect_messages(call, messages), 10)  # 50 heartbeat intervals

    assert [m.WhichOneof("kind") for m in messages] == ["heartbeat", "heartbeat", "heartbeat"]
    assert (ended.value.code(), ended.value.details()) == (
        grpc.StatusCode.UNAVAILABLE,
        "injected stream error after 3 messages",
    )


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
    # The first heartbeat and the item: two messages.
    fault = _node_fault(streamError="not-found", streamErrorRpcs=["_SubscriptionRequest"], streamErrorMessageLimit=2)

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


async def test_official_node_sdk_ends_a_subscription_on_a_stream_error_after_heartbeats_alone(
    start_server: StartServer,
) -> None:
    # Momento's "mid-stream error should end the subscription" (topic-subscribe.test.ts): nothing is published.
    server = start_server("--fault-injection", "--heartbeat-interval", "0.2")
    cache = create_cache(server)
    fault = _node_fault(streamError="not-found", streamErrorRpcs=["_SubscriptionRequest"], streamErrorMessageLimit=3)

    async with node_subscriber(server, cache, "--seconds", "15", "--heartbeats", "--fault", fault) as subscriber:
        exit_code = await subscriber.finish()

    [error] = subscriber.of_kind("error")
    assert exit_code == 1
    assert error["code"] == "NOT_FOUND_ERROR"
    assert len(subscriber.of_kind("heartbeat")) == 3
    assert subscriber.of_kind("item") == []


# --- the test-admin API (--test-admin-port) ---------------------------------------------------------------

# Heartbeats every quarter second: a port that is not silent shows within `QUIET`.
BLOCK_HEARTBEAT_INTERVAL = 0.25
QUIET = 6 * BLOCK_HEARTBEAT_INTERVAL


def _test_admin_url(server: ServerProcess) -> str:
    [logged] = server.wait_for_log(r"test-admin API at (http://\S+) ")
    return logged.group(1)


async def _queue_messages(call: Any, messages: asyncio.Queue[pb._SubscriptionItem]) -> None:
    """Put every message of ``call`` in ``messages`` as it arrives, until the stream ends."""
    while (message := await call.read()) is not grpc.aio.EOF:  # type: ignore[attr-defined]  # missing from grpc-stubs
        messages.put_nowait(message)


async def _next_within(messages: asyncio.Queue[pb._SubscriptionItem], seconds: float) -> pb._SubscriptionItem | None:
    """The next message to arrive within ``seconds``; None if none does."""
    try:
        return await asyncio.wait_for(messages.get(), seconds)
    except TimeoutError:
        return None


async def _through_item(messages: asyncio.Queue[pb._SubscriptionItem], text: str) -> list[pb._SubscriptionItem]:
    """The messages that arrive until the item of value ``text`` has, that one included, within 10 s."""
    received: list[pb._SubscriptionItem] = []
    async with asyncio.timeout(10):
        while not received or received[-1].item.value.text != text:
            received.append(await messages.get())
    return received


async def test_test_admin_block_silences_open_streams_and_new_calls_until_unblock(start_server: StartServer) -> None:
    server = start_server(
        "--fault-injection", "--test-admin-port", "0", "--heartbeat-interval", str(BLOCK_HEARTBEAT_INTERVAL)
    )
    admin = _test_admin_url(server)
    cache = create_cache(server)
    request = pb._PublishRequest(cache_name=cache, topic="t", value=text("after"))
    messages: asyncio.Queue[pb._SubscriptionItem] = asyncio.Queue()

    async with (
        httpx.AsyncClient() as http,
        grpc.aio.insecure_channel(server.endpoint) as channel,
        # A connection of its own (channels to one address share one otherwise), opened while blocked.
        grpc.aio.insecure_channel(server.endpoint, options=[("grpc.use_local_subchannel_pool", 1)]) as new_channel,
    ):
        call = await open_subscription(cachepubsub_pb2_grpc.PubsubStub(channel), cache, "t")
        reader = asyncio.ensure_future(_queue_messages(call, messages))
        blocked = await http.get(f"{admin}/block")
        new_stub = cachepubsub_pb2_grpc.PubsubStub(new_channel)
        with pytest.raises(grpc.aio.AioRpcError) as unanswered:  # meanwhile, what passed before the block arrives
            await new_stub.Publish(request, timeout=1)
        for _ in range(messages.qsize()):  # what the relay passed before it was blocked (a heartbeat on its way)
            messages.get_nowait()
        published = await http.post(
            f"{server.http_url}/topics/{cache}/t", content="during", headers={"content-type": "text/plain"}
        )  # the HTTP port is not blocked
        leaked = await _next_within(messages, QUIET)  # bounded negative check: 6 heartbeat intervals
        unblocked = await http.get(f"{admin}/unblock")
        await new_stub.Publish(request, timeout=10)  # the connection opened while blocked goes through
        resumed = await _through_item(messages, "after")
        call.cancel()
        await asyncio.gather(reader, return_exceptions=True)

    assert (blocked.status_code, blocked.text, unblocked.status_code, unblocked.text) == (
        200,
        "blocked\n",
        200,
        "unblocked\n",
    )
    assert published.status_code == 204
    assert unanswered.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert leaked is None, f"a message reached the client through a blocked port: {leaked}"
    assert resumed[0].WhichOneof("kind") == "heartbeat"  # heartbeats sent while blocked waited, and come first
    assert [m.item.value.text for m in resumed if m.WhichOneof("kind") == "item"] == ["during", "after"]
    assert all(m.WhichOneof("kind") in ("heartbeat", "item") for m in resumed)  # no discontinuity: nothing lost


async def test_official_node_sdk_detects_a_blocked_port_and_resumes_after_unblock(start_server: StartServer) -> None:
    # The shape of Momento's test-admin retry test (topic-client-retry.test.ts), plus messages published meanwhile.
    # The block comes after 15 heartbeats (7 s or more): past the 5 s deadline of the SDK's first stream, which it
    # also reports as a lost connection, so that the loss seen after the block is the block's.
    server = start_server("--fault-injection", "--test-admin-port", "0", "--heartbeat-interval", "0.5")
    admin_port = _test_admin_url(server).rsplit(":", 1)[1]
    cache = create_cache(server)
    async with grpc.aio.insecure_channel(server.endpoint) as channel:
        await publish(cachepubsub_pb2_grpc.PubsubStub(channel), cache, "t", "m1")  # the SDK's resume point
    process = await asyncio.create_subprocess_exec(
        "node", str(INTEROP), "blocked-subscribe", "--host", server.host, "--port", str(server.port),
        "--cache", cache, "--topic", "t", "--trace", "--count", "5", "--seconds", "60",
        "--admin-port", admin_port, "--block-after", "15", "--quiet-ms", "2000",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    subscriber = NodeSubscriber(process)
    assert process.stdin is not None
    try:
        await subscriber.wait_for("blocked")
        async with httpx.AsyncClient() as http:  # the HTTP API's port is not blocked
            during = [
                await http.post(
                    f"{server.http_url}/topics/{cache}/t", content=value, headers={"content-type": "text/plain"}
                )
                for value in ("m2", "m3")
            ]
        await subscriber.wait_for("quiet")
        process.stdin.write(b"unblock\n")
        await process.stdin.drain()
        await subscriber.wait_for("unblocked")
        async with grpc.aio.insecure_channel(server.endpoint) as channel:
            stub = cachepubsub_pb2_grpc.PubsubStub(channel)
            for value in ("m4", "m5"):
                await publish(stub, cache, "t", value)
        exit_code = await subscriber.finish()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    after_block = subscriber.lines[next(n for n, line in enumerate(subscriber.lines) if "blocked" in line) :]
    lost = next(line["connection_lost"] for line in after_block if "connection_lost" in line)
    ended = next(line["stream_status"] for line in after_block if "stream_status" in line)
    [quiet] = subscriber.of_kind("quiet")
    items = subscriber.of_kind("item")
    assert exit_code == 0
    assert [response.status_code for response in during] == [204, 204]
    assert ended == {"code": grpc.StatusCode.UNAVAILABLE.value[0], "details": "Connection dropped"}  # keepalive
    # Counted from /block's answer, taken about 6 s before the loss (12 heartbeat intervals): at most the one
    # heartbeat the relay passed just before the block, if Node handled it after the answer.
    assert lost["heartbeats_since_block"] <= 1
    # None in the 2 s (4 intervals) after the loss, on the old connection or the SDK's new one; and the loss seen.
    # (More than one loss is legitimate: a resubscription over the silent port can end the same way.)
    assert quiet["heartbeats_since_block"] == lost["heartbeats_since_block"]
    assert quiet["losses_since_block"] >= 1
    assert [(i["sequence_number"], i["value"]) for i in items] == [(n, f"m{n}") for n in range(1, 6)]
    assert subscriber.of_kind("discontinuity") == []


def test_test_admin_port_is_refused_without_fault_injection(tmp_path: Path) -> None:
    refused = subprocess.run(
        [sys.executable, "-m", "tidings", "server", "--data-dir", str(tmp_path), "--test-admin-port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert refused.returncode == 2
    assert "--test-admin-port needs --fault-injection" in refused.stderr
