"""The durable store: the Store contract (run over the SQLite and Redis stores and the test fake), persistence."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tidings.server.core import InvalidArgument, Store, TopicsService
from tidings.server.engine.memory import MemoryEngine
from tidings.server.store.redis import RedisStore
from tidings.server.store.sqlite import SqliteStore

from ._support import MemoryStore

_prefixes = itertools.count(1)


@pytest.fixture(params=["sqlite", "redis", "fake"])
async def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """Every Store implementation (the Redis one on a real redis-server), so the fake cannot drift from them."""
    store: Store
    if request.param == "sqlite":
        store = await SqliteStore.open(tmp_path)
    elif request.param == "redis":
        store = await RedisStore.open(request.getfixturevalue("redis_server").url, prefix=f"s{next(_prefixes)}:")
    else:
        store = MemoryStore()
    yield store
    await store.close()


async def test_store_create_cache_reports_whether_it_was_new(any_store: Store) -> None:
    # Act
    created = await any_store.create_cache("c")
    again = await any_store.create_cache("c")

    # Assert
    assert (created, again) == (True, False)


async def test_store_lists_caches_sorted(any_store: Store) -> None:
    # Arrange
    for name in ("zeta", "alpha", "日本", "Mid"):
        await any_store.create_cache(name)

    # Act
    names = await any_store.list_caches()

    # Assert
    assert names == ["Mid", "alpha", "zeta", "日本"]


async def test_store_delete_cache_reports_whether_it_existed(any_store: Store) -> None:
    # Arrange
    await any_store.create_cache("c")

    # Act
    deleted = await any_store.delete_cache("c")
    again = await any_store.delete_cache("c")

    # Assert
    assert (deleted, again) == (True, False)
    assert await any_store.list_caches() == []


async def test_store_cache_exists_while_created_and_not_deleted(any_store: Store) -> None:
    # Act
    before = await any_store.cache_exists("c")
    await any_store.create_cache("c")
    created = await any_store.cache_exists("c")
    await any_store.delete_cache("c")
    deleted = await any_store.cache_exists("c")

    # Assert
    assert (before, created, deleted) == (False, True, False)


async def test_store_caches_version_moves_with_every_change_when_shared(any_store: Store) -> None:
    # Act
    versions = [await any_store.caches_version()]
    await any_store.create_cache("c")
    versions.append(await any_store.caches_version())
    await any_store.create_cache("c")  # no change
    versions.append(await any_store.caches_version())
    await any_store.delete_cache("c")
    versions.append(await any_store.caches_version())

    # Assert: other servers notice each change of a shared store; an unshared one has no one to tell.
    if any_store.shared:
        assert versions[0] < versions[1] == versions[2] < versions[3]
    else:
        assert versions == [0, 0, 0, 0]


async def test_store_page_floor_starts_at_zero_and_keeps_the_last_saved(any_store: Store) -> None:
    # Arrange
    initial = await any_store.load_page_floor()

    # Act
    await any_store.save_page_floor(1_700_000_000_000_000)
    await any_store.save_page_floor(1_700_000_000_000_001)

    # Assert
    assert initial == 0
    assert await any_store.load_page_floor() == 1_700_000_000_000_001


async def test_sqlite_store_persists_caches_and_page_floor_across_reopen(tmp_path: Path) -> None:
    # Arrange
    store = await SqliteStore.open(tmp_path)
    await store.create_cache("kept")
    await store.create_cache("deleted")
    await store.delete_cache("deleted")
    await store.save_page_floor(2**63 + 5)  # a uint64 page beyond SQLite's signed integers
    await store.close()

    # Act
    reopened = await SqliteStore.open(tmp_path)
    try:
        caches = await reopened.list_caches()
        floor = await reopened.load_page_floor()
    finally:
        await reopened.close()

    # Assert
    assert caches == ["kept"]
    assert floor == 2**63 + 5
    assert (tmp_path / SqliteStore.FILENAME).is_file()


async def test_sqlite_store_creates_missing_data_dir(tmp_path: Path) -> None:
    # Act
    store = await SqliteStore.open(tmp_path / "a" / "b")
    await store.close()

    # Assert
    assert (tmp_path / "a" / "b" / SqliteStore.FILENAME).is_file()


async def test_sqlite_store_close_is_idempotent_and_use_after_close_fails(tmp_path: Path) -> None:
    # Arrange
    store = await SqliteStore.open(tmp_path)

    # Act
    await store.close()
    await store.close()

    # Assert
    with pytest.raises(RuntimeError, match="closed"):
        await store.list_caches()


async def test_sqlite_store_backed_service_rejects_non_utf8_cache_name(tmp_path: Path) -> None:
    # Arrange
    store = await SqliteStore.open(tmp_path)
    service = TopicsService(MemoryEngine(10, 1024 * 1024), store)
    await service.start()

    # Act / Assert: a bad name is INVALID_ARGUMENT, not a UnicodeEncodeError from SQLite (INTERNAL).
    try:
        with pytest.raises(InvalidArgument, match="cache_name"):
            await service.create_cache("bad\ud800name")
    finally:
        await service.close()
        await store.close()
