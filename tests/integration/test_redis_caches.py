"""Caches are one directory across a deployment: two nodes on one Redis, two on a Redis Cluster, and one
server with ``--workers 2`` answer the same about every cache, over gRPC (``ScsControl``), HTTP and the CLI.

Every call goes over a connection of its own, so with ``--workers 2`` the kernel spreads the calls over both
workers, as it spreads a CLI's.
"""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import grpc.aio
import httpx
import pytest
from momento_wire_types import cachepubsub_pb2_grpc, controlclient_pb2, controlclient_pb2_grpc

from tests.integration._server import ServerProcess
from tests.integration._wire import open_subscription, status_of

# Calls per check: with two workers, a wrong answer from either one shows in 12 connections but with
# probability 2 * 2**-12.
ROUNDS = 12
_names = itertools.count(1)


@dataclass
class Deployment:
    """Where to reach "node A" and "node B" (the same address for ``--workers 2``)."""

    a: ServerProcess
    b: ServerProcess


@pytest.fixture(scope="module", params=["redis-nodes", "cluster-nodes", "workers"])
def deployment(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    directory = tmp_path_factory.mktemp(request.param)
    if request.param == "workers":
        redis = request.getfixturevalue("redis_server")
        server = ServerProcess(directory, ("--redis-url", redis.url, "--workers", "2")).start()
        server.wait_for_log(r"\[worker (\d+)\]: tidings listening on grpc://", count=2)
        started = [server]
    else:
        cluster = request.param == "cluster-nodes"
        flag = "--redis-cluster" if cluster else "--redis-url"
        url = request.getfixturevalue("redis_cluster" if cluster else "redis_server").url
        started = [ServerProcess(directory / name, (flag, url)).start() for name in ("a", "b")]
    yield Deployment(started[0], started[-1])
    for server in started:
        server.stop()


def _name() -> str:
    return f"shared-{next(_names)}"


async def _control(server: ServerProcess, method: str, request: object) -> grpc.StatusCode | object:
    """One ``ScsControl`` call on a connection of its own: its response, or its status code if it failed."""
    async with grpc.aio.insecure_channel(server.endpoint) as channel:
        call = getattr(controlclient_pb2_grpc.ScsControlStub(channel), method)
        try:
            response: object = await call(request, timeout=10)
            return response
        except grpc.aio.AioRpcError as error:
            return error.code()


async def _listed(server: ServerProcess) -> set[str]:
    response = await _control(server, "ListCaches", controlclient_pb2._ListCachesRequest())
    assert isinstance(response, controlclient_pb2._ListCachesResponse), response
    return {cache.cache_name for cache in response.cache}


async def _get(server: ServerProcess, name: str) -> httpx.Response:
    async with httpx.AsyncClient() as http:  # a connection of its own
        return await http.get(f"{server.http_url}/caches/{name}")


def _cli(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tidings", "--endpoint", server.endpoint, "cache", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_redis_caches_a_cache_created_on_one_node_is_listed_found_and_taken_on_the_other(
    deployment: Deployment,
) -> None:
    # Arrange
    name = _name()

    # Act
    created = await _control(deployment.a, "CreateCache", controlclient_pb2._CreateCacheRequest(cache_name=name))
    listed = [name in await _listed(deployment.b) for _ in range(ROUNDS)]
    got = [(await _get(deployment.b, name)).status_code for _ in range(ROUNDS)]
    again = await _control(deployment.b, "CreateCache", controlclient_pb2._CreateCacheRequest(cache_name=name))
    cli = _cli(deployment.b, "list")

    # Assert
    assert isinstance(created, controlclient_pb2._CreateCacheResponse), created
    assert listed == [True] * ROUNDS
    assert got == [200] * ROUNDS
    assert (await _get(deployment.b, name)).json() == {"name": name, "subscriptions": 0}
    assert again == grpc.StatusCode.ALREADY_EXISTS
    assert cli.returncode == 0, cli.stderr
    assert name in cli.stdout.split()


async def test_redis_caches_caches_deleted_on_the_other_node_are_gone_and_their_subscriptions_end(
    deployment: Deployment,
) -> None:
    # Arrange: caches created on A, the first with subscribers there (over connections the kernel spreads, with
    # workers); B never used them.
    names = [_name() for _ in range(ROUNDS)]
    for name in names:
        await _control(deployment.a, "CreateCache", controlclient_pb2._CreateCacheRequest(cache_name=name))
    channels = [grpc.aio.insecure_channel(deployment.a.endpoint) for _ in range(4)]
    try:
        calls = [
            await open_subscription(cachepubsub_pb2_grpc.PubsubStub(channel), names[0], "t") for channel in channels
        ]

        # Act
        deleted = [
            await _control(deployment.b, "DeleteCache", controlclient_pb2._DeleteCacheRequest(cache_name=name))
            for name in names
        ]
        ended = await asyncio.wait_for(asyncio.gather(*(status_of(call) for call in calls)), 30)
    finally:
        await asyncio.gather(*(channel.close(None) for channel in channels))
    listed = [await _listed(deployment.a) for _ in range(ROUNDS)]
    got = [(await _get(deployment.a, name)).status_code for name in names]
    again = await _control(deployment.a, "DeleteCache", controlclient_pb2._DeleteCacheRequest(cache_name=names[0]))
    cli = _cli(deployment.a, "delete", names[0])

    # Assert
    assert all(isinstance(answer, controlclient_pb2._DeleteCacheResponse) for answer in deleted), deleted
    assert [error.code() for error in ended] == [grpc.StatusCode.NOT_FOUND] * len(calls)
    assert [listing.intersection(names) for listing in listed] == [set()] * ROUNDS
    assert got == [404] * ROUNDS
    assert again == grpc.StatusCode.NOT_FOUND
    assert cli.returncode == 1
    assert "delete failed: CACHE_NOT_FOUND" in cli.stderr, cli.stderr
