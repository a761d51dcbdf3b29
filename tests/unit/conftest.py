"""Fixtures for the unit tests: a topics service over the memory engine, a fake store and fake clocks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from tidings.server.core import Limits, TopicsService

from ._support import FakeClock, MemoryStore, RecordingEngine

CACHE = "cache"
TOPIC = "topic"
WALL_START = 1_700_000_000.0

MakeService = Callable[..., Awaitable[TopicsService]]


@pytest.fixture
def clock() -> FakeClock:
    """The monotonic clock of the service (heartbeats, TTLs, rate limits)."""
    return FakeClock(1_000.0)


@pytest.fixture
def wall_clock() -> FakeClock:
    """The wall clock sequence pages derive from."""
    return FakeClock(WALL_START)


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def engines() -> list[RecordingEngine]:
    """The engines of the services made by `make_service`, in order."""
    return []


@pytest.fixture
async def make_service(
    clock: FakeClock, wall_clock: FakeClock, store: MemoryStore, engines: list[RecordingEngine]
) -> AsyncIterator[MakeService]:
    """Build and start services (closed at teardown); each has the cache ``CACHE``."""
    services: list[TopicsService] = []

    async def make(
        limits: Limits | None = None,
        *,
        heartbeat_interval: float = 10.0,
        subscribe_latest: int = 1,
        store: object = store,
        caches: tuple[str, ...] = (CACHE,),
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> TopicsService:
        limits = limits or Limits()
        engine = RecordingEngine(limits.retention_messages, limits.retention_bytes)
        service = TopicsService(
            engine,
            store,  # type: ignore[arg-type]
            limits,
            heartbeat_interval=heartbeat_interval,
            subscribe_latest=subscribe_latest,
            clock=clock,
            wall_clock=wall_clock,
            sleep=asyncio.sleep if sleep is None else sleep,
        )
        await service.start()
        services.append(service)
        engines.append(engine)
        for cache_name in caches:
            if not service.has_cache(cache_name):
                await service.create_cache(cache_name)
        return service

    yield make
    for service in services:
        await service.close()


@pytest.fixture
async def service(make_service: MakeService) -> TopicsService:
    """A started service with default limits and the cache ``CACHE``."""
    return await make_service()


@pytest.fixture
def engine(service: TopicsService, engines: list[RecordingEngine]) -> RecordingEngine:
    """The engine of `service`."""
    return engines[0]
