"""Start and stop real ``tidings server`` processes on loopback ports."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from tests._child import prepared

_LISTENING = re.compile(r"listening on grpcs?://([^\s]+):(\d+)")
_LISTENING_HTTP = re.compile(r"listening on https?://([^\s]+):(\d+)")
START_TIMEOUT = 30.0
_PORT_TAKEN = "Address already in use"


class _PortTaken(RuntimeError):
    """The server could not listen: its port was taken."""


@dataclass
class ServerProcess:
    """A ``tidings server`` subprocess; ``log`` collects what it printed.

    HTTP is served on a free port picked at the first start (``--http-port 0`` would disable it), kept across
    restarts; ``http_port`` is the port the server logged, 0 if HTTP is disabled (``--http-port 0`` in args).
    ``open_files`` is the (soft, hard) RLIMIT_NOFILE the server starts with (default: this process's).
    """

    data_dir: Path
    args: tuple[str, ...]
    host: str = "127.0.0.1"
    port: int = 0
    http_port: int = 0
    process: subprocess.Popen[str] | None = None
    log: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)  # extra environment variables
    _logged: threading.Condition = field(default_factory=threading.Condition)
    open_files: tuple[int, int] | None = None
    _drain: threading.Thread | None = None
    _listening: bool = False

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    def start(self) -> ServerProcess:
        """Start the server and return once it logged that it listens (port 0 picks a free port).

        The HTTP port is picked here, so another process can take it before the server binds it (CI runs many
        servers and Redis nodes at once): then a new one is picked, up to three times.
        """
        picked = not self.http_port
        for attempt in range(3):
            if picked:
                self.http_port = _free_port(self.host)
            try:
                return self._start_once()
            except _PortTaken:
                if not picked or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _start_once(self) -> ServerProcess:
        command = [
            sys.executable, "-m", "tidings", "server",
            "--host", self.host, "--port", str(self.port), "--http-port", str(self.http_port),
            "--data-dir", str(self.data_dir), *self.args,
        ]  # fmt: skip
        self.log = []
        if self.open_files is not None:
            command = prepared(command, open_files=self.open_files)
        process = self.process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **self.env},
        )
        # One thread reads the log from the start: a select() on the pipe would miss lines that arrived in the
        # same read as an earlier one and sit in the reader's buffer.
        listening = threading.Event()
        self._drain = threading.Thread(target=self._drain_log, args=(process, listening), daemon=True)
        self._drain.start()
        listening.wait(START_TIMEOUT)
        if not self._listening:
            log = "".join(self.log)
            if _PORT_TAKEN in log:
                # Known at once; under load the exit after it can outlast the start timeout, so it is not awaited.
                self.kill()
                raise _PortTaken(f"server could not listen: {log}")
            if process.poll() is None:
                self.kill()
                raise TimeoutError(f"server did not start: {log}")
            self._reap(10.0)
            raise RuntimeError(f"server exited with {process.returncode}: {log}")
        return self

    def _drain_log(self, process: subprocess.Popen[str], listening: threading.Event) -> None:
        assert process.stderr is not None
        self._listening = False
        http_port = 0
        for line in process.stderr:
            with self._logged:
                self.log.append(line)
                self._logged.notify_all()
            if listening.is_set():
                continue
            if _PORT_TAKEN in line:  # the start failed: no need to wait for the exit
                listening.set()
                continue
            http_match = _LISTENING_HTTP.search(line)
            if http_match:  # logged just before the gRPC line, when HTTP is enabled
                http_port = int(http_match.group(2))
            match = _LISTENING.search(line)
            if match:
                self.port = int(match.group(2))
                self.http_port = http_port
                self._listening = True
                listening.set()
        listening.set()  # the server exited

    def wait_for_log(self, pattern: str, count: int = 1, timeout: float = START_TIMEOUT) -> list[re.Match[str]]:
        """The first ``count`` matches of ``pattern`` in the log, waiting for them to be logged."""
        compiled = re.compile(pattern)

        def matches() -> list[re.Match[str]]:
            found = [m for m in map(compiled.search, list(self.log)) if m]
            return found if len(found) >= count else []

        with self._logged:
            if not self._logged.wait_for(matches, timeout):
                raise TimeoutError(f"{count} x {pattern!r} not logged: {''.join(self.log)}")
        return matches()[:count]

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Signal the server and wait for it to exit; returns its exit code."""
        process = self.process
        assert process is not None
        if process.poll() is None:
            process.send_signal(signum)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                raise
        self._reap(timeout)
        return process.returncode

    def kill(self) -> None:
        """Kill the server at once (no graceful shutdown)."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self._reap(10.0)

    def _reap(self, timeout: float) -> None:
        if self._drain is not None:
            self._drain.join(timeout)
            self._drain = None
        if self.process is not None and self.process.stderr is not None:
            self.process.stderr.close()

    def restart(self) -> ServerProcess:
        """Stop gracefully and start again on the same port and data dir."""
        self.stop()
        return self.start()


def _free_port(host: str) -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
