"""Start and stop real ``tidings server`` processes on loopback ports."""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

_LISTENING = re.compile(r"listening on grpc://([^\s]+):(\d+)")
START_TIMEOUT = 30.0


@dataclass
class ServerProcess:
    """A ``tidings server`` subprocess; ``log`` collects what it printed."""

    data_dir: Path
    args: tuple[str, ...]
    host: str = "127.0.0.1"
    port: int = 0
    process: subprocess.Popen[str] | None = None
    log: list[str] = field(default_factory=list)
    _drain: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> ServerProcess:
        """Start the server and return once it logged that it listens (port 0 picks a free port)."""
        command = [
            sys.executable, "-m", "tidings", "server",
            "--host", self.host, "--port", str(self.port), "--http-port", "0",
            "--data-dir", str(self.data_dir), *self.args,
        ]  # fmt: skip
        self.log = []
        process = self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env={**os.environ}
        )
        assert process.stderr is not None
        selector = selectors.DefaultSelector()
        selector.register(process.stderr, selectors.EVENT_READ)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if not selector.select(timeout=max(0.0, deadline - time.monotonic())):
                self.kill()
                raise TimeoutError(f"server did not start: {''.join(self.log)}")
            line = process.stderr.readline()
            if not line:
                process.wait()
                process.stderr.close()
                raise RuntimeError(f"server exited with {process.returncode}: {''.join(self.log)}")
            self.log.append(line)
            match = _LISTENING.search(line)
            if match:
                self.port = int(match.group(2))
                break
        selector.close()
        self._drain = threading.Thread(target=self._drain_log, args=(process,), daemon=True)
        self._drain.start()
        return self

    def _drain_log(self, process: subprocess.Popen[str]) -> None:
        assert process.stderr is not None
        for line in process.stderr:
            self.log.append(line)

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
