"""Fixtures for the SDK tests: tidings clients (async and blocking) for the session server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.integration._server import ServerProcess
from tidings import CacheClient, CacheClientAsync, TopicClient, TopicClientAsync

# Generous: a loaded CI machine must not turn a slow answer into a TIMEOUT failure.
TIMEOUT = 20.0


@pytest.fixture
async def client(server: ServerProcess) -> AsyncIterator[TopicClientAsync]:
    """A tidings async topic client for the session server."""
    async with TopicClientAsync(server.endpoint, timeout=TIMEOUT) as client:
        yield client


@pytest.fixture
def sync_client(server: ServerProcess) -> Iterator[TopicClient]:
    """A tidings blocking topic client for the session server."""
    with TopicClient(server.endpoint, timeout=TIMEOUT) as client:
        yield client


@pytest.fixture
async def caches(server: ServerProcess) -> AsyncIterator[CacheClientAsync]:
    """A tidings async cache client for the session server."""
    async with CacheClientAsync(server.endpoint, timeout=TIMEOUT) as client:
        yield client


@pytest.fixture
def sync_caches(server: ServerProcess) -> Iterator[CacheClient]:
    """A tidings blocking cache client for the session server."""
    with CacheClient(server.endpoint, timeout=TIMEOUT) as client:
        yield client
