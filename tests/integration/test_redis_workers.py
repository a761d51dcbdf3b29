"""``tidings server --workers N`` with Redis: workers share the ports and topics, die and come back, drain."""

from __future__ import annotations

import asyncio
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc.aio
import pytest
from momento_wire_types import cachepubsub_pb2_grpc

from tests._redis import RedisServer
from tests.integration._server import ServerProcess
from tests.integration._wire import open_subscription, publish, read_items

from .conftest import create_cache

_WORKER_STARTED = r"worker (\d+) started \(pid (\d+)\)"
_WORKER_LISTENING = r"\[worker (\d+)\]: tidings listening on grpc://"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def workers(tmp_path: Path, redis_server: RedisServer) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path, ("--redis-url", redis_server.url, "--workers", "2")).start()
    server.wait_for_log(_WORKER_LISTENING, count=2)
    yield server
    server.stop()


async def _fan_out(server: ServerProcess, cache: str, topic: str, connections: int) -> list[list[str]]:
    """Subscribe over ``connections`` connections (spread over the workers), publish over another one."""
    channels = [grpc.aio.insecure_channel(server.endpoint) for _ in range(connections + 1)]
    try:
        stubs = [cachepubsub_pb2_grpc.PubsubStub(channel) for channel in channels]
        calls = [await open_subscription(stub, cache, topic) for stub in stubs[1:]]
        for value in ("a", "b"):
            await publish(stubs[0], cache, topic, value)
        received = [[item.value.text for item in await read_items(call, 2)] for call in calls]
        for call in calls:
            call.cancel()
        return received
    finally:
        await asyncio.gather(*(channel.close(None) for channel in channels))


async def test_workers_share_the_port_and_every_subscriber_gets_every_message(workers: ServerProcess) -> None:
    # Arrange
    pids = {int(m.group(2)) for m in workers.wait_for_log(_WORKER_STARTED, count=2)}
    cache = create_cache(workers)

    # Act
    received = await _fan_out(workers, cache, "t", connections=8)

    # Assert
    assert len(pids) == 2
    assert received == [["a", "b"]] * 8


async def test_a_killed_worker_is_restarted_and_serving_goes_on(workers: ServerProcess) -> None:
    # Arrange
    first = workers.wait_for_log(_WORKER_STARTED, count=2)
    victim = int(first[0].group(2))
    cache = create_cache(workers)

    # Act
    os.kill(victim, signal.SIGKILL)
    workers.wait_for_log(r"worker 0 \(pid \d+\) was killed by SIGKILL; restarting it", count=1)
    restarted = workers.wait_for_log(_WORKER_STARTED, count=3)[2]
    workers.wait_for_log(_WORKER_LISTENING, count=3)
    received = await _fan_out(workers, cache, "t", connections=6)

    # Assert
    assert int(restarted.group(1)) == 0
    assert int(restarted.group(2)) != victim
    assert received == [["a", "b"]] * 6


def test_workers_are_titled_by_their_number_in_ps(workers: ServerProcess) -> None:
    # Arrange: each worker names itself before it starts listening, which the fixture waited for.
    pids = {int(m.group(1)): int(m.group(2)) for m in workers.wait_for_log(_WORKER_STARTED, count=2)}

    # Act: what `ps -o args` and `ps -o comm` (and top) read.
    titles = {
        index: Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode().strip() for index, pid in pids.items()
    }
    names = {index: Path(f"/proc/{pid}/comm").read_text().strip() for index, pid in pids.items()}

    # Assert
    assert titles == {0: "tidings worker 0", 1: "tidings worker 1"}
    assert names == {0: "tidings-w0", 1: "tidings-w1"}


def test_sigterm_to_the_supervisor_drains_every_worker(workers: ServerProcess) -> None:
    # Arrange
    pids = [int(m.group(2)) for m in workers.wait_for_log(_WORKER_STARTED, count=2)]

    # Act
    code = workers.stop()

    # Assert
    assert code == 0
    assert len(workers.wait_for_log(r"\]: tidings stopped", count=2)) == 2
    assert not any(_alive(pid) for pid in pids)


def test_workers_drain_and_stop_when_the_supervisor_is_killed(workers: ServerProcess) -> None:
    # Arrange
    pids = [int(m.group(2)) for m in workers.wait_for_log(_WORKER_STARTED, count=2)]
    exits = [os.pidfd_open(pid) for pid in pids]  # readable once that process has exited

    # Act: SIGKILL leaves the supervisor no chance to stop its workers.
    assert workers.process is not None
    workers.process.kill()
    workers.process.wait()

    # Assert
    try:
        deadline = time.monotonic() + 20
        for pid, exited in zip(pids, exits, strict=True):
            readable, _, _ = select.select([exited], [], [], max(0.0, deadline - time.monotonic()))
            assert readable, f"worker {pid} still serves after its supervisor died"
    finally:
        for pid, exited in zip(pids, exits, strict=True):
            if not select.select([exited], [], [], 0)[0]:
                os.kill(pid, signal.SIGKILL)  # the test failed: leave nothing behind
            os.close(exited)
    assert len(workers.wait_for_log(r"the supervisor \(pid \d+\) is gone; draining", count=2)) == 2
    assert len(workers.wait_for_log(r"\]: tidings stopped", count=2)) == 2


def test_workers_without_redis_are_refused(tmp_path: Path) -> None:
    # Act
    server = ServerProcess(tmp_path, ("--workers", "2"))
    with pytest.raises((RuntimeError, TimeoutError), match="needs --redis-url"):  # exited, or EOF seen first
        server.start()


def test_workers_refuse_a_busy_port_in_one_line(tmp_path: Path, redis_server: RedisServer) -> None:
    # Arrange: another process holds the port (the workers' SO_REUSEPORT must not quietly share it).
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]

        # Act
        command = [sys.executable, "-m", "tidings", "server", "--port", str(port), "--http-port", "0"]
        command += ["--data-dir", str(tmp_path), "--redis-url", redis_server.url, "--workers", "2"]
        refused = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=60,
        )

    # Assert
    assert refused.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert "worker 0 started" not in refused.stderr
