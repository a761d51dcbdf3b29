"""Starting, restarting and stopping a real server process."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import grpc
import grpc.aio
import pytest
from momento_wire_types import cachepubsub_pb2_grpc, controlclient_pb2, controlclient_pb2_grpc

from tests.integration._server import ServerProcess
from tests.integration._wire import open_subscription, publish, read_items, status_of
from tests.integration.conftest import create_cache

StartServer = Callable[..., ServerProcess]


def _list_caches(server: ServerProcess) -> list[str]:
    with grpc.insecure_channel(server.endpoint) as channel:
        response = controlclient_pb2_grpc.ScsControlStub(channel).ListCaches(
            controlclient_pb2._ListCachesRequest(), timeout=10
        )
    return [c.cache_name for c in response.cache]


async def _first_item_page(server: ServerProcess, cache: str, topic: str) -> tuple[int, int]:
    async with grpc.aio.insecure_channel(server.endpoint) as channel:
        stub = cachepubsub_pb2_grpc.PubsubStub(channel)
        call = await open_subscription(stub, cache, topic)
        await publish(stub, cache, topic, "v")
        [item] = await read_items(call, 1)
        call.cancel()
    return item.sequence_page, item.topic_sequence_number


def test_server_logs_where_it_listens(start_server: StartServer) -> None:
    server = start_server()

    assert any(f"listening on grpc://127.0.0.1:{server.port}" in line for line in server.log)


async def test_caches_survive_restart_and_pages_only_grow(start_server: StartServer) -> None:
    server = start_server("--create-cache", "kept")
    create_cache(server, "made-later")
    page_before, _ = await _first_item_page(server, "kept", "t")

    server.restart()
    page_after, sequence_after = await _first_item_page(server, "kept", "t")

    assert {"kept", "made-later"} <= set(_list_caches(server))
    assert page_after > page_before
    assert sequence_after == 1


async def test_sigterm_ends_streams_with_unavailable_and_exits_cleanly(start_server: StartServer) -> None:
    server = start_server()
    cache = create_cache(server)
    async with grpc.aio.insecure_channel(server.endpoint) as channel:
        call = await open_subscription(cachepubsub_pb2_grpc.PubsubStub(channel), cache, "t")

        stopping = asyncio.get_running_loop().run_in_executor(None, server.stop, signal.SIGTERM)
        error = await status_of(call)
        exit_code = await stopping

    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert exit_code == 0
    assert any("stopped" in line for line in server.log)


def test_sigint_stops_gracefully(start_server: StartServer) -> None:
    server = start_server()

    assert server.stop(signal.SIGINT) == 0


async def test_idle_topic_is_retired_and_next_use_starts_new_page(start_server: StartServer) -> None:
    server = start_server("--topic-idle-ttl", "0.2")
    cache = create_cache(server)
    first_page, _ = await _first_item_page(server, cache, "t")
    # The topic is idle from here on: let several TTLs (0.2 s; swept every TTL/4) pass.
    await asyncio.sleep(1.0)

    second_page, sequence = await _first_item_page(server, cache, "t")

    assert second_page > first_page
    assert sequence == 1


async def test_topic_with_subscriber_is_not_retired(start_server: StartServer) -> None:
    server = start_server("--topic-idle-ttl", "0.2", "--heartbeat-interval", "0.2")
    cache = create_cache(server)
    async with grpc.aio.insecure_channel(server.endpoint) as channel:
        stub = cachepubsub_pb2_grpc.PubsubStub(channel)
        call = await open_subscription(stub, cache, "t")
        await publish(stub, cache, "t", "one")
        [first] = await read_items(call, 1)
        # Several TTLs pass, measured by the server's own heartbeats.
        for _ in range(4):
            message = await call.read()
            assert message.WhichOneof("kind") == "heartbeat"
        await publish(stub, cache, "t", "two")
        [second] = await read_items(call, 1)
        call.cancel()

    assert (second.sequence_page, second.topic_sequence_number) == (first.sequence_page, 2)


def test_busy_port_fails_with_clear_message(start_server: StartServer, tmp_path: Path) -> None:
    server = start_server()

    result = subprocess.run(
        [sys.executable, "-m", "tidings", "server", "--port", str(server.port), "--data-dir", str(tmp_path / "x")],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    assert f"cannot listen on 127.0.0.1:{server.port}" in result.stderr


def test_invalid_flag_value_is_a_usage_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tidings", "server", "--max-message-size", "lots", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    assert "is not a size" in result.stderr


def test_environment_variables_configure_the_server(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ServerProcess(tmp_path, ())
    server.port = port
    env_process = subprocess.Popen(
        [sys.executable, "-m", "tidings", "server"],
        env={
            **__import__("os").environ,
            "TIDINGS_PORT": str(port),
            "TIDINGS_DATA_DIR": str(tmp_path),
            "TIDINGS_HTTP_PORT": "0",
            "TIDINGS_CREATE_CACHE": "from-env",
        },
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert env_process.stderr is not None
        line = env_process.stderr.readline()
        while line and "listening on grpc://" not in line:
            line = env_process.stderr.readline()
        assert f"listening on grpc://127.0.0.1:{port}" in line
        assert "from-env" in _list_caches(server)
    finally:
        env_process.send_signal(signal.SIGTERM)
        env_process.wait(20)
        assert env_process.stderr is not None
        env_process.stderr.close()


def test_bad_create_cache_name_is_a_usage_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tidings", "server", "--create-cache", "bad\tname", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    assert "--create-cache" in result.stderr
    assert "control characters" in result.stderr


def _tidings(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tidings", *args], capture_output=True, text=True, timeout=60)


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def test_a_second_server_on_a_data_directory_refuses_naming_it_and_the_first(start_server: StartServer) -> None:
    first = start_server("--create-cache", "kept")
    assert first.process is not None

    second = _tidings("server", "--port", "0", "--http-port", "0", "--data-dir", str(first.data_dir))

    assert second.returncode == 2
    line = _one_line(second.stderr)
    assert str(first.data_dir) in line
    assert f"pid {first.process.pid}" in line
    assert _list_caches(first) == ["kept"]  # the first one is undisturbed
    first.restart()  # and the lock goes with it: it starts again on the same directory
    assert _list_caches(first) == ["kept"]


def _file(path: Path) -> Path:
    path.write_text("not a directory\n")
    return path / "data"


def _not_a_database(path: Path) -> Path:
    path.mkdir()
    (path / "tidings.sqlite3").write_bytes(b"this is not a SQLite database, it is text " * 10)
    return path


def _store_is_a_directory(path: Path) -> Path:
    (path / "tidings.sqlite3").mkdir(parents=True)
    return path


def _secret_is_a_directory(path: Path) -> Path:
    (path / "secret.key").mkdir(parents=True)
    return path


def _short_secret(path: Path) -> Path:
    path.mkdir()
    (path / "secret.key").write_text("short\n")
    return path


UNUSABLE_DATA_DIRS = {
    "under-a-file": (_file, "Not a directory"),
    "not-a-database": (_not_a_database, "file is not a database"),
    "store-is-a-directory": (_store_is_a_directory, "unable to open database file"),
    "secret-is-a-directory": (_secret_is_a_directory, "Is a directory"),
    "short-secret": (_short_secret, "holds no usable secret"),
}


@pytest.mark.parametrize(("make", "reason"), UNUSABLE_DATA_DIRS.values(), ids=UNUSABLE_DATA_DIRS.keys())
def test_an_unusable_data_directory_is_one_line_and_exit_status_2(
    tmp_path: Path, make: Callable[[Path], Path], reason: str
) -> None:
    data_dir = make(tmp_path / "d")

    result = _tidings("server", "--port", "0", "--http-port", "0", "--data-dir", str(data_dir))

    assert result.returncode == 2
    line = _one_line(result.stderr)
    assert line.startswith(f"Error: data directory {data_dir}: ")
    assert reason in line


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        pytest.param(_file, "no tidings store", id="under-a-file"),
        pytest.param(_not_a_database, "file is not a database", id="not-a-database"),
    ],
)
@pytest.mark.parametrize(
    "command",
    [("key", "list"), ("key", "create", "--super-user"), ("key", "revoke", "x"), ("token", "revoke", "x")],
    ids=["key-list", "key-create", "key-revoke", "token-revoke"],
)
def test_key_commands_on_an_unusable_data_directory_are_one_line_and_exit_status_2(
    tmp_path: Path, make: Callable[[Path], Path], reason: str, command: tuple[str, ...]
) -> None:
    data_dir = make(tmp_path / "d")

    result = _tidings(*command, "--data-dir", str(data_dir))

    assert result.returncode == 2
    line = _one_line(result.stderr)
    assert line.startswith(f"Error: data directory {data_dir}: ")
    assert reason in line
    assert "tdk_" not in result.stdout
