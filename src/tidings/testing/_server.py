"""`run_server` and `run_server_async`: a tidings server for the duration of a ``with`` block.

The pytest plugin imports this module when pytest starts, before coverage does: it imports only the standard
library at module level, and the server and client modules when a server is started.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tidings.server.core import Limits


@dataclass(frozen=True, slots=True)
class RunningServer:
    """Where a test server listens, and where it keeps its data."""

    host: str
    port: int
    data_dir: Path

    @property
    def endpoint(self) -> str:
        """``host:port``, what `tidings.TopicClient` takes (official SDKs take ``host`` and ``port``)."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@contextlib.contextmanager
def _data_dir(data_dir: str | Path | None) -> Iterator[Path]:
    if data_dir is not None:
        yield Path(data_dir)
        return
    with tempfile.TemporaryDirectory(prefix="tidings-") as directory:
        yield Path(directory)


@contextlib.asynccontextmanager
async def run_server_async(
    *,
    create_caches: Iterable[str] = (),
    data_dir: str | Path | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    heartbeat_interval: float = 10.0,
    limits: Limits | None = None,
    shutdown_grace: float = 1.0,
    subscribe_latest: int = 1,
    fault_injection: bool = False,
) -> AsyncIterator[RunningServer]:
    """Run a server on the current event loop until the block ends.

    ``create_caches`` exist when it starts. ``data_dir`` None uses a fresh temporary directory (removed
    afterwards); ``port`` 0 picks a free one. ``limits`` is a ``tidings.server.core.Limits``;
    ``subscribe_latest`` and ``fault_injection`` are ``tidings server --subscribe-latest`` and
    ``--fault-injection`` (Momento Local's fault headers, docs/testing.md).
    """
    from tidings.server.app import Server
    from tidings.server.config import Settings
    from tidings.server.core import Limits

    with _data_dir(data_dir) as directory:
        settings = Settings(
            host=host,
            port=port,
            http_port=0,
            data_dir=directory,
            create_caches=tuple(create_caches),
            limits=limits or Limits(),
            heartbeat_interval=heartbeat_interval,
            shutdown_grace=shutdown_grace,
            subscribe_latest=subscribe_latest,
            fault_injection=fault_injection,
        )
        async with Server(settings) as server:
            yield RunningServer(host, server.port, directory)


@contextlib.contextmanager
def run_server(
    *,
    create_caches: Iterable[str] = (),
    data_dir: str | Path | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    heartbeat_interval: float = 10.0,
    limits: Limits | None = None,
    shutdown_grace: float = 1.0,
    subscribe_latest: int = 1,
    fault_injection: bool = False,
) -> Iterator[RunningServer]:
    """Run a server on a background thread (with its own event loop) until the block ends.

    The arguments are those of `run_server_async`. Any client, blocking or async, in any thread, can use it.
    """
    from tidings.client._loop import LoopThread

    server = run_server_async(
        create_caches=create_caches,
        data_dir=data_dir,
        host=host,
        port=port,
        heartbeat_interval=heartbeat_interval,
        limits=limits,
        shutdown_grace=shutdown_grace,
        subscribe_latest=subscribe_latest,
        fault_injection=fault_injection,
    )
    loop = LoopThread("tidings-test-server")
    try:
        running = loop.run(server.__aenter__())
        try:
            yield running
        finally:
            loop.run(server.__aexit__(None, None, None))
    finally:
        loop.close()
