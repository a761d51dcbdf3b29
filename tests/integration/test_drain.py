"""``--drain-timeout``: on SIGTERM open streams keep being served while new calls are refused."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections.abc import Callable

import grpc
import grpc.aio
import httpx
from momento_wire_types import cachepubsub_pb2_grpc

from tests.integration._server import ServerProcess
from tests.integration._wire import open_subscription, publish, read, status_of
from tests.integration.conftest import create_cache
from tests.integration.http._sse import SseReader

StartServer = Callable[..., ServerProcess]
HEARTBEAT = "0.2"


async def _signal_and_wait_for_drain(server: ServerProcess) -> None:
    assert server.process is not None
    server.process.send_signal(signal.SIGTERM)
    # The drain's own line: "draining" alone also matches the startup line, whose data directory is named after
    # the test (pytest's tmp_path), and a request sent then could reach the server before the signal.
    drain_started = r"draining: \d+ subscriptions open"
    await asyncio.get_running_loop().run_in_executor(None, lambda: server.wait_for_log(drain_started, timeout=20.0))


async def test_draining_server_keeps_streams_and_exits_when_their_clients_finish(start_server: StartServer) -> None:
    server = start_server("--drain-timeout", "60", "--heartbeat-interval", HEARTBEAT)
    cache = create_cache(server)
    async with grpc.aio.insecure_channel(server.endpoint) as channel:
        stub = cachepubsub_pb2_grpc.PubsubStub(channel)
        call = await open_subscription(stub, cache, "t")

        await _signal_and_wait_for_drain(server)
        delivered_while_draining = [(await read(call)).WhichOneof("kind") for _ in range(3)]
        try:
            await publish(stub, cache, "t", "too late")
            refused: grpc.StatusCode | None = None
        except grpc.aio.AioRpcError as error:
            refused = error.code()
        still_open = not call.done()
        call.cancel()  # the client finishes

        assert server.process is not None
        started = time.monotonic()
        exit_code = await asyncio.get_running_loop().run_in_executor(None, server.process.wait, 30)
        exited_after = time.monotonic() - started

    assert delivered_while_draining == ["heartbeat"] * 3
    assert still_open
    assert refused == grpc.StatusCode.UNAVAILABLE
    assert exit_code == 0, "".join(server.log)
    assert exited_after < 30  # not the 60 s drain timeout: it ended when its last stream did
    server.wait_for_log("drained: every subscription ended by its client", timeout=10)


async def test_drain_timeout_ends_the_remaining_streams_with_unavailable(start_server: StartServer) -> None:
    server = start_server("--drain-timeout", "1", "--heartbeat-interval", HEARTBEAT)
    cache = create_cache(server)
    async with grpc.aio.insecure_channel(server.endpoint) as channel:
        call = await open_subscription(cachepubsub_pb2_grpc.PubsubStub(channel), cache, "t")

        await _signal_and_wait_for_drain(server)
        heartbeat_while_draining = (await read(call)).WhichOneof("kind")
        error = await status_of(call)

    assert heartbeat_while_draining == "heartbeat"
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert server.process is not None
    assert server.process.wait(30) == 0
    server.wait_for_log("drain over: ending 1 subscriptions with UNAVAILABLE", timeout=10)


async def test_a_second_signal_cuts_the_drain_short(start_server: StartServer) -> None:
    server = start_server("--drain-timeout", "600", "--heartbeat-interval", HEARTBEAT)
    cache = create_cache(server)
    async with grpc.aio.insecure_channel(server.endpoint) as channel:
        call = await open_subscription(cachepubsub_pb2_grpc.PubsubStub(channel), cache, "t")

        await _signal_and_wait_for_drain(server)
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        error = await status_of(call)

    assert error.code() == grpc.StatusCode.UNAVAILABLE
    try:
        assert server.process.wait(30) == 0
    except subprocess.TimeoutExpired:
        raise AssertionError("".join(server.log)) from None


async def test_draining_server_keeps_sse_streams_and_refuses_new_http_publishes(start_server: StartServer) -> None:
    server = start_server("--drain-timeout", "60", "--heartbeat-interval", HEARTBEAT)
    cache = create_cache(server)
    async with (
        httpx.AsyncClient(base_url=server.http_url, timeout=10) as http,
        http.stream("GET", f"/topics/{cache}/t/events") as response,
    ):
        events = SseReader(response)
        assert (await events.next()).event == "heartbeat"

        await _signal_and_wait_for_drain(server)
        ready = (await http.get("/ready")).status_code
        publish = await http.post(f"/topics/{cache}/t", content="too late", headers={"Content-Type": "text/plain"})
        delivered_while_draining = [(await events.next()).event for _ in range(3)]

    assert ready == 503
    assert publish.status_code == 503
    assert delivered_while_draining == ["heartbeat"] * 3
    assert server.process is not None
    assert server.process.wait(30) == 0, "".join(server.log)
    server.wait_for_log("drained: every subscription ended by its client", timeout=10)
