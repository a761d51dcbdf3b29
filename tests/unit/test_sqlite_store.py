"""The durable store: the Store contract (run over the SQLite store and the test fake) and persistence."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tidings.server.auth import MAX_TOKEN_LIFETIME
from tidings.server.core import InvalidArgument, Store, TopicsService
from tidings.server.engine.memory import MemoryEngine
from tidings.server.store.sqlite import SqliteStore

from ._support import MemoryStore


@pytest.fixture(params=["sqlite", "fake"])
async def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """Every Store implementation the unit tests use, so the fake cannot drift from the real one."""
    store: Store = await SqliteStore.open(tmp_path) if request.param == "sqlite" else MemoryStore()
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


async def test_sqlite_store_keeps_token_revocations_for_the_longest_token_lifetime(tmp_path: Path) -> None:
    # Arrange
    store = await SqliteStore.open(tmp_path)
    try:
        version = await store.api_keys_version()

        # Act: a revocation, a later one of the same id, and one so much later that the first id's tokens expired.
        await store.revoke_token("a", 1000.0)
        await store.revoke_token("a", 900.0)  # never moves back
        await store.revoke_token("b", 1000.0 + MAX_TOKEN_LIFETIME)
        kept = await store.list_revoked_tokens()
        await store.revoke_token("c", 1001.0 + MAX_TOKEN_LIFETIME)
        pruned = await store.list_revoked_tokens()
        bumped = await store.api_keys_version()
    finally:
        await store.close()

    # Assert
    assert kept == {"a": 1000.0, "b": 1000.0 + MAX_TOKEN_LIFETIME}
    assert pruned == {"b": 1000.0 + MAX_TOKEN_LIFETIME, "c": 1001.0 + MAX_TOKEN_LIFETIME}
    assert bumped == version + 4  # each revocation reaches running servers
