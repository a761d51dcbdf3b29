"""Fixtures for the HTTP API tests: httpx clients for the session server and for servers with small limits."""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from tests.integration._server import ServerProcess

_names = itertools.count(1)


def unique(prefix: str) -> str:
    """A name not used before in this test session."""
    return f"{prefix}-{os.getpid()}-{next(_names)}"


def _start(tmp_path_factory: pytest.TempPathFactory, *args: str) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("http-data"), args).start()
    yield process
    assert process.stop() == 0, "".join(process.log)


@pytest.fixture(scope="session")
def short_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server whose long polls give up after 0.5 s and whose topics keep only 5 messages."""
    yield from _start(
        tmp_path_factory, "--http-long-poll-timeout", "0.5", "--retention-messages", "5", "--heartbeat-interval", "1"
    )


@pytest.fixture(scope="session")
def limited_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server allowing 1 publish per second and 1 subscription per cache."""
    yield from _start(tmp_path_factory, "--publish-rate", "1", "--max-subscriptions-per-cache", "1")


@pytest.fixture
async def http(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the session server."""
    async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as client:
        yield client


@pytest.fixture
async def short_http(short_server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=short_server.http_url, timeout=30) as client:
        yield client


@pytest.fixture
async def limited_http(limited_server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=limited_server.http_url, timeout=30) as client:
        yield client


async def new_cache(client: httpx.AsyncClient) -> str:
    """Create a cache with a fresh name over HTTP."""
    name = unique("http-cache")
    response = await client.put(f"/caches/{name}")
    assert response.status_code == 201, response.text
    return name


async def publish_text(client: httpx.AsyncClient, cache: str, topic: str, value: str) -> None:
    response = await client.post(f"/topics/{cache}/{topic}", content=value, headers={"content-type": "text/plain"})
    assert response.status_code == 204, response.text


async def poll(client: httpx.AsyncClient, cache: str, topic: str, sequence_number: int = 0, page: int = 0) -> list[Any]:
    """One long-poll; the response's ``items``."""
    params = {"sequence_number": sequence_number, "sequence_page": page}
    response = await client.get(f"/topics/{cache}/{topic}", params=params)
    assert response.status_code == 200, response.text
    return response.json()["items"]  # type: ignore[no-any-return]
