"""What the server's log says, and how (issue 11, item 17)."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from momento_wire_types import cachepubsub_pb2, cachepubsub_pb2_grpc

from tests.integration._server import ServerProcess

StartServer = Callable[..., ServerProcess]
# grpc C-core's own log lines: "E1130 17:51:04.160294    7018 add_port.cc:83] ..."
# A record of one of uvicorn's loggers, in the text format.
_UVICORN_RECORD = re.compile(r" [A-Z]+ uvicorn[.:]")
_CORE_LINE = re.compile(r"^[DIWEF]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ \S+:\d+\]", re.MULTILINE)


def _run_server(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "tidings", "server", "--data-dir", str(data_dir), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("busy", ["grpc", "http"])
def test_busy_port_is_one_clear_error(tmp_path: Path, busy: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        grpc_port, http_port = (port, 0) if busy == "grpc" else (0, port)
        result = _run_server("--port", str(grpc_port), "--http-port", str(http_port), data_dir=tmp_path / "data")

    assert result.returncode != 0
    assert f"Error: cannot listen on {'http://' if busy == 'http' else ''}127.0.0.1:{port}: Address already in use" in (
        result.stderr
    )
    assert not _CORE_LINE.search(result.stderr), result.stderr
    assert "GRPC_VERBOSITY" not in result.stderr


def test_grpc_client_on_the_http_port_gets_one_helpful_line(start_server: StartServer) -> None:
    server = start_server("--create-cache", "c")
    request = cachepubsub_pb2._PublishRequest(cache_name="c", topic="t", value=cachepubsub_pb2._TopicValue(text="v"))
    for _ in range(2):
        with grpc.insecure_channel(f"127.0.0.1:{server.http_port}") as channel, pytest.raises(grpc.RpcError) as error:
            cachepubsub_pb2_grpc.PubsubStub(channel).Publish(request, timeout=5)
        # Answered in gRPC, saying where gRPC is (not a closed socket).
        assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert error.value.details() == (
            f"this is tidings' HTTP port (HTTP API, browser stream, console); gRPC is served on port {server.port}"
        )
    log = "".join(server.log)

    lines = [line for line in server.log if "gRPC (HTTP/2) to the HTTP port" in line]
    assert len(lines) == 1, log
    assert f"gRPC is served on port {server.port}" in lines[0]
    assert "Invalid HTTP request" not in log


def test_http1_request_on_the_h2_grpc_port_is_answered_and_logged_once(start_server: StartServer) -> None:
    server = start_server("--grpc-transport", "h2")
    answers = []
    for _ in range(2):
        with socket.create_connection((server.host, server.port), timeout=10) as client:
            client.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
            answer = b""
            while chunk := client.recv(4096):  # the server closes after its answer
                answer += chunk
        answers.append(answer.decode())
    with grpc.insecure_channel(server.endpoint) as channel:  # and gRPC goes on as before
        grpc.channel_ready_future(channel).result(timeout=10)
    log = "".join(server.log)

    assert all(answer.startswith("HTTP/1.1 400 Bad Request\r\n") for answer in answers), answers
    assert f"The HTTP API is served on port {server.http_port}." in answers[0]
    lines = [line for line in server.log if "HTTP/1.1 request to the gRPC port" in line]
    assert len(lines) == 1, log
    assert f"HTTP is served on port {server.http_port} (such connections so far: 1)" in lines[0]


def test_startup_log_has_no_uvicorn_chatter_and_counts_caches_in_english(start_server: StartServer) -> None:
    server = start_server("--create-cache", "c")
    server.stop()
    log = "".join(server.log)

    assert not _UVICORN_RECORD.search(log), log
    assert "Started server process" not in log
    assert ", 1 cache, " in log


def test_uvicorn_records_are_the_http_transports_at_debug(start_server: StartServer) -> None:
    server = start_server("--log-level", "debug")
    server.stop()

    assert not _UVICORN_RECORD.search("".join(server.log))
    assert any("DEBUG tidings.server.http: Started server process" in line for line in server.log)


def test_json_log_format_is_one_object_per_line(start_server: StartServer) -> None:
    server = start_server("--log-format", "json", "--create-cache", "c")
    server.stop()

    records = [json.loads(line) for line in server.log]
    assert records
    assert all(set(record) >= {"time", "level", "logger", "message"} for record in records)
    listening = [record for record in records if record["message"].startswith("tidings listening on grpc://")]
    assert listening
    assert listening[0]["level"] == "INFO"
    assert listening[0]["logger"] == "tidings.server"
    assert listening[0]["time"].endswith("+00:00")
