"""The official Node SDK (``@gomomento/sdk``, tests/node) against tidings: publish, subscribe, resume.

The Node SDK gives its first Subscribe stream a 5 s deadline and then resubscribes with its resume point
(last sequence number + 1, last page), so a subscription that runs past 5 s exercises resume for real.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc.aio
from momento_wire_types import cachepubsub_pb2_grpc

from tests.integration._server import ServerProcess
from tests.integration._wire import open_subscription, publish, read_items
from tests.integration.conftest import create_cache

INTEROP = Path(__file__).parents[1] / "node" / "interop.mjs"
StartServer = Callable[..., ServerProcess]


def run_node(server: ServerProcess, scenario: str, *args: str) -> list[dict[str, Any]]:
    """Run a scenario to completion; returns its JSON lines (the exit code must be 0)."""
    result = subprocess.run(
        ["node", str(INTEROP), scenario, "--host", server.host, "--port", str(server.port), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


class NodeSubscriber:
    """A running ``interop.mjs subscribe``: its JSON lines, as they arrive."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[dict[str, Any]] = []

    async def next_line(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        raw = await asyncio.wait_for(self.process.stdout.readline(), 30)
        assert raw, "the Node subscriber exited early"
        line: dict[str, Any] = json.loads(raw)
        self.lines.append(line)
        return line

    async def wait_for(self, key: str) -> dict[str, Any]:
        while True:
            line = await self.next_line()
            if key in line:
                return line

    async def finish(self) -> int:
        """Read everything up to exit; returns the exit code."""
        assert self.process.stdout is not None
        rest = await asyncio.wait_for(self.process.stdout.read(), 60)
        self.lines.extend(json.loads(line) for line in rest.decode().splitlines())
        return await self.process.wait()

    def of_kind(self, key: str) -> list[dict[str, Any]]:
        return [line[key] for line in self.lines if key in line]


@asynccontextmanager
async def node_subscriber(server: ServerProcess, cache: str, *args: str) -> AsyncIterator[NodeSubscriber]:
    process = await asyncio.create_subprocess_exec(
        "node", str(INTEROP), "subscribe", "--host", server.host, "--port", str(server.port),
        "--cache", cache, "--topic", "t", "--trace", *args,
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    subscriber = NodeSubscriber(process)
    try:
        await subscriber.wait_for("ready")
        yield subscriber
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def test_node_cache_client_creates_lists_and_deletes(server: ServerProcess) -> None:
    lines = run_node(server, "cache", "--cache", "node-cache")

    assert lines, "the scenario printed nothing"
    assert not [line for line in lines if "error" in line]


async def test_node_publishes_and_python_receives_in_order(server: ServerProcess, cache: str) -> None:
    async with grpc.aio.insecure_channel(server.endpoint) as channel:
        call = await open_subscription(cachepubsub_pb2_grpc.PubsubStub(channel), cache, "t")
        await asyncio.to_thread(run_node, server, "publish", "--cache", cache, "--topic", "t", "--count", "5")
        items = await read_items(call, 5)
        call.cancel()

    assert [(i.topic_sequence_number, i.value.text) for i in items] == [(n, f"msg-{n}") for n in range(1, 6)]


async def test_node_subscription_resumes_exactly_across_its_resubscribe(server: ServerProcess, cache: str) -> None:
    count = 40
    async with (
        grpc.aio.insecure_channel(server.endpoint) as channel,
        node_subscriber(server, cache, "--count", str(count), "--seconds", "60") as subscriber,
    ):
        stub = cachepubsub_pb2_grpc.PubsubStub(channel)
        # 40 messages over 12 s: the SDK's 5 s stream deadline and resubscribe fall in the middle.
        for i in range(1, count + 1):
            await publish(stub, cache, "t", f"m{i}")
            await asyncio.sleep(0.3)
        exit_code = await subscriber.finish()

    items = subscriber.of_kind("item")
    requests = subscriber.of_kind("subscribe_request")
    assert exit_code == 0
    assert [(i["sequence_number"], i["value"]) for i in items] == [(n, f"m{n}") for n in range(1, count + 1)]
    assert subscriber.of_kind("discontinuity") == []
    assert len(requests) >= 2, "the SDK should have resubscribed at least once"
    resumed = requests[1]
    assert resumed["resume_at_topic_sequence_number"] > 1
    assert resumed["sequence_page"] == items[0]["sequence_page"]


async def test_node_subscription_survives_server_restart_with_discontinuity(start_server: StartServer) -> None:
    server = start_server()
    cache = create_cache(server)
    async with node_subscriber(server, cache, "--count", "6", "--seconds", "60") as subscriber:
        async with grpc.aio.insecure_channel(server.endpoint) as channel:
            stub = cachepubsub_pb2_grpc.PubsubStub(channel)
            for i in range(1, 4):
                await publish(stub, cache, "t", f"before-{i}")
            for _ in range(3):
                await subscriber.wait_for("item")

        await asyncio.to_thread(server.restart)
        async with grpc.aio.insecure_channel(server.endpoint) as channel:
            stub = cachepubsub_pb2_grpc.PubsubStub(channel)
            for i in range(1, 4):
                await publish(stub, cache, "t", f"after-{i}")
        exit_code = await subscriber.finish()

    items = subscriber.of_kind("item")
    [gap] = subscriber.of_kind("discontinuity")
    assert exit_code == 0
    assert [i["value"] for i in items] == ["before-1", "before-2", "before-3", "after-1", "after-2", "after-3"]
    old_page, new_page = items[0]["sequence_page"], items[3]["sequence_page"]
    assert new_page > old_page
    assert gap["new_sequence_page"] == new_page
    assert [i["sequence_number"] for i in items] == [1, 2, 3, 1, 2, 3]
