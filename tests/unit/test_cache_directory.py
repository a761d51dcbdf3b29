"""The cache directory's reads of a shared store for requests: an unexpected error is `Unavailable` to each caller
and logged once for the run of failures, not once per request (issue 16 item 2's review)."""

from __future__ import annotations

import logging

import pytest

from tidings.server.core import CacheNotFound, Unavailable

from ._support import MemoryStore
from .conftest import MakeService

LOGGER = "tidings.server"
FAILED_LOOKUPS = 50


class BrokenLookups(MemoryStore):
    """A shared store whose cache lookups fail with a bug (a `KeyError`) while ``broken``."""

    shared = True

    def __init__(self) -> None:
        super().__init__()
        self.broken = True

    async def cache_exists(self, cache_name: str) -> bool:
        if self.broken:
            raise KeyError("malformed cache record")
        return await super().cache_exists(cache_name)


async def test_cache_directory_logs_failing_lookups_once_and_their_end_once(
    make_service: MakeService, caplog: pytest.LogCaptureFixture
) -> None:
    # Arrange
    caplog.set_level(logging.INFO, LOGGER)
    store = BrokenLookups()
    service = await make_service(store=store)

    # Act: publishes to a cache this process does not know look it up in the store
    for _ in range(FAILED_LOOKUPS):
        with pytest.raises(Unavailable, match="the store is unreachable"):
            await service.publish("elsewhere", "t", "m")
    store.broken = False
    with pytest.raises(CacheNotFound):
        await service.publish("elsewhere", "t", "m")

    # Assert: one line with the traceback when the lookups started failing, one when they worked again
    records = [record for record in caplog.records if record.name == LOGGER]
    assert [record.levelname for record in records] == ["WARNING", "INFO"]
    started, ended = (record.getMessage() for record in records)
    assert started == "looking up caches in the store is failing: KeyError: 'malformed cache record'"
    assert ended.startswith(f"looking up caches in the store works again after {FAILED_LOOKUPS} failures in ")
    assert records[0].exc_info is not None
