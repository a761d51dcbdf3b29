"""Fixtures: real tidings servers on loopback ports, official Momento SDK clients, raw wire stubs."""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from pathlib import Path

import grpc
import grpc.aio
import pytest
from momento import (
    CacheClient,
    CacheClientAsync,
    Configurations,
    CredentialProvider,
    TopicClient,
    TopicClientAsync,
    TopicConfigurations,
)
from momento_wire_types import cachepubsub_pb2_grpc, controlclient_pb2, controlclient_pb2_grpc

from tests.integration._server import ServerProcess

# The official SDK applies its client timeout to subscription streams: keep it long in tests.
SDK_TIMEOUT = timedelta(seconds=120)
HEARTBEAT_INTERVAL = 1.0
_cache_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the session, default limits, 1 s heartbeats."""
    process = ServerProcess(
        tmp_path_factory.mktemp("data"),
        ("--heartbeat-interval", str(HEARTBEAT_INTERVAL), "--create-cache", "default-cache"),
    ).start()
    yield process
    assert process.stop() == 0, "".join(process.log)


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start a dedicated server with extra flags (stopped at teardown)."""
    started: list[ServerProcess] = []

    def start(*args: str, data_dir: Path | None = None) -> ServerProcess:
        process = ServerProcess(data_dir or tmp_path / f"data{len(started)}", args).start()
        started.append(process)
        return process

    yield start
    for process in started:
        # Gracefully, so that a server's coverage data is saved; stop() kills one that does not exit.
        process.stop()


def credentials(server: ServerProcess) -> CredentialProvider:
    """What an official SDK user passes for a local server."""
    return CredentialProvider.for_momento_local(server.host, server.port)


def create_cache(server: ServerProcess, name: str | None = None) -> str:
    """Create a cache with a unique name over the wire and return the name."""
    name = name or f"cache-{os.getpid()}-{next(_cache_numbers)}"
    with grpc.insecure_channel(server.endpoint) as channel:
        controlclient_pb2_grpc.ScsControlStub(channel).CreateCache(
            controlclient_pb2._CreateCacheRequest(cache_name=name), timeout=10
        )
    return name


@pytest.fixture
def cache(server: ServerProcess) -> str:
    """A fresh cache on the session server."""
    return create_cache(server)


@pytest.fixture
def topic_client(server: ServerProcess) -> Iterator[TopicClient]:
    config = TopicConfigurations.Default.v1().with_client_timeout(SDK_TIMEOUT)
    with TopicClient(config, credentials(server)) as client:
        yield client


@pytest.fixture
async def topic_client_async(server: ServerProcess) -> AsyncIterator[TopicClientAsync]:
    config = TopicConfigurations.Default.v1().with_client_timeout(SDK_TIMEOUT)
    async with TopicClientAsync(config, credentials(server)) as client:
        yield client


@pytest.fixture
def cache_client(server: ServerProcess) -> Iterator[CacheClient]:
    config = Configurations.Laptop.v1().with_client_timeout(SDK_TIMEOUT)
    with CacheClient(config, credentials(server), timedelta(seconds=60)) as client:
        yield client


@pytest.fixture
async def cache_client_async(server: ServerProcess) -> AsyncIterator[CacheClientAsync]:
    config = Configurations.Laptop.v1().with_client_timeout(SDK_TIMEOUT)
    async with CacheClientAsync(config, credentials(server), timedelta(seconds=60)) as client:
        yield client


@pytest.fixture
async def channel(server: ServerProcess) -> AsyncIterator[grpc.aio.Channel]:
    """A raw grpc.aio channel to the session server."""
    async with grpc.aio.insecure_channel(server.endpoint) as channel:
        yield channel


@pytest.fixture
def pubsub(channel: grpc.aio.Channel) -> cachepubsub_pb2_grpc.PubsubStub:
    """A raw Pubsub stub, for what the official SDK hides (heartbeats, discontinuities, pages)."""
    return cachepubsub_pb2_grpc.PubsubStub(channel)


_DOCS_COLLECTED = pytest.StashKey[bool]()


def pytest_report_header(config: pytest.Config) -> str:
    """Which gRPC transport the servers the tests start use (``TIDINGS_GRPC_TRANSPORT``; the Makefile runs the
    gRPC modules over both)."""
    return f"tidings gRPC transport: {os.environ.get('TIDINGS_GRPC_TRANSPORT', 'h2')}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    config.stash[_DOCS_COLLECTED] = any(item.nodeid.startswith("tests/integration/test_docs.py") for item in items)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """After the docs tests: which doc blocks were not run, and why (test_docs.py's `docs-test: skip`)."""
    if not config.stash.get(_DOCS_COLLECTED, False):
        return
    from tests.integration._docs import doc_files, extract_blocks

    skipped = [block for path in doc_files() for block in extract_blocks(path) if block.directive == "skip"]
    terminalreporter.section("doc blocks not run (docs-test: skip)")
    for block in skipped:
        terminalreporter.write_line(f"{block.where}: {block.argument or '(no reason given)'}")
