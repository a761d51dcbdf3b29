"""`CacheClientAsync` and `CacheClient` against a real server."""

from __future__ import annotations

from tidings import CacheClient, CacheClientAsync, CreateCache, DeleteCache, ErrorCode, ListCaches


async def test_cache_client_async_creates_lists_and_deletes(caches: CacheClientAsync, cache: str) -> None:
    name = f"{cache}-new"

    created = await caches.create_cache(name)
    again = await caches.create_cache(name)
    listed = await caches.list_caches()
    deleted = await caches.delete_cache(name)
    missing = await caches.delete_cache(name)
    after = await caches.list_caches()

    assert created == CreateCache.Success()
    assert again == CreateCache.CacheAlreadyExists()
    assert isinstance(listed, ListCaches.Success)
    assert name in listed.cache_names
    assert listed.cache_names == sorted(listed.cache_names)
    info = next(info for info in listed.caches if info.name == name)
    assert info.topic_limits is not None
    assert info.topic_limits.max_publish_message_size_kb == 4
    assert deleted == DeleteCache.Success()
    assert isinstance(missing, DeleteCache.Error)
    assert missing.error_code is ErrorCode.CACHE_NOT_FOUND
    assert isinstance(after, ListCaches.Success)
    assert name not in after.cache_names


def test_cache_client_sync_creates_lists_and_deletes(sync_caches: CacheClient, cache: str) -> None:
    name = f"{cache}-sync"

    responses = [sync_caches.create_cache(name), sync_caches.list_caches(), sync_caches.delete_cache(name)]

    match responses:
        case [CreateCache.Success(), ListCaches.Success(caches=listed), DeleteCache.Success()]:
            assert name in {info.name for info in listed}
        case _:
            raise AssertionError(responses)
