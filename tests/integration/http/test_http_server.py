"""Starting and configuring the HTTP server: disabled with port 0, a busy port is a clear start-up error."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.integration._server import ServerProcess

StartServer = Callable[..., ServerProcess]


def test_http_port_zero_disables_http(start_server: StartServer) -> None:
    server = start_server("--http-port", "0")

    assert server.http_port == 0
    assert not any("listening on http" in line for line in server.log)
    assert any("listening on grpc://" in line for line in server.log)


def test_busy_http_port_fails_the_start_with_a_clear_message(tmp_path: Path) -> None:
    with socket.socket() as occupant:
        occupant.bind(("127.0.0.1", 0))
        occupant.listen()
        port = occupant.getsockname()[1]
        command = [sys.executable, "-m", "tidings", "server", "--port", "0", "--http-port", str(port)]
        result = subprocess.run(
            [*command, "--data-dir", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert result.returncode == 1
    assert f"cannot listen on http://127.0.0.1:{port}" in result.stderr


def test_long_poll_timeout_must_be_positive(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tidings", "server", "--http-long-poll-timeout", "0", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    assert "--http-long-poll-timeout" in result.stderr
