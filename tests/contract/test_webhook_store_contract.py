"""The webhook store contract (the registry's `WebhookStore`, and cache deletion taking webhooks along), over the SQLite
and the Redis store."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tidings.server.store.redis import RedisStore
from tidings.server.store.sqlite import SqliteStore
from tidings.server.webhooks import Webhook

_prefixes = itertools.count(1)


@pytest.fixture(params=["sqlite", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqliteStore | RedisStore]:
    opened: SqliteStore | RedisStore
    if request.param == "sqlite":
        opened = await SqliteStore.open(tmp_path)
    else:
        opened = await RedisStore.open(request.getfixturevalue("redis_server").url, prefix=f"w{next(_prefixes)}:")
    await opened.create_cache("cache")
    await opened.create_cache("other")
    yield opened
    await opened.close()


def _hook(name: str, cache: str = "cache", topic: str = "topic", secret: str = "s1") -> Webhook:
    return Webhook(cache, name, topic, f"https://example.test/{name}?ü=1", secret)


async def test_webhook_store_creates_and_lists_every_field_sorted(store: SqliteStore | RedisStore) -> None:
    # Arrange
    b, a, other = _hook("b"), _hook("a", topic="tópico"), _hook("a", cache="other")

    # Act
    stored = [await store.put_webhook(webhook) for webhook in (b, a, other)]

    # Assert
    assert stored == [b, a, other]
    assert await store.list_webhooks() == [a, b, other]


async def test_webhook_store_replace_keeps_the_secret(store: SqliteStore | RedisStore) -> None:
    # Arrange
    await store.put_webhook(_hook("a", secret="first"))
    replacement = Webhook("cache", "a", "new-topic", "http://127.0.0.1:9/new", "second")

    # Act
    stored = await store.put_webhook(replacement)

    # Assert
    kept = Webhook("cache", "a", "new-topic", "http://127.0.0.1:9/new", "first")
    assert stored == kept
    assert await store.list_webhooks() == [kept]


async def test_webhook_store_refuses_a_webhook_of_an_unknown_cache(store: SqliteStore | RedisStore) -> None:
    # Act
    stored = await store.put_webhook(_hook("a", cache="missing"))

    # Assert
    assert stored is None
    assert await store.list_webhooks() == []


async def test_webhook_store_sets_the_secret_of_known_webhooks_only(store: SqliteStore | RedisStore) -> None:
    # Arrange
    await store.put_webhook(_hook("a", secret="first"))

    # Act
    known = await store.set_webhook_secret("cache", "a", "rotated")
    unknown = await store.set_webhook_secret("cache", "nope", "rotated")

    # Assert
    assert (known, unknown) == (True, False)
    assert [webhook.secret for webhook in await store.list_webhooks()] == ["rotated"]


async def test_webhook_store_deletes_once(store: SqliteStore | RedisStore) -> None:
    # Arrange
    await store.put_webhook(_hook("a"))
    await store.put_webhook(_hook("b"))

    # Act
    first = await store.delete_webhook("cache", "a")
    again = await store.delete_webhook("cache", "a")

    # Assert
    assert (first, again) == (True, False)
    assert [webhook.name for webhook in await store.list_webhooks()] == ["b"]


async def test_webhook_store_deleting_a_cache_deletes_its_webhooks(store: SqliteStore | RedisStore) -> None:
    # Arrange
    await store.put_webhook(_hook("a"))
    await store.put_webhook(_hook("a", cache="other"))

    # Act
    deleted = await store.delete_cache("cache")
    await store.create_cache("cache")

    # Assert
    assert deleted is True
    assert [(webhook.cache_name, webhook.name) for webhook in await store.list_webhooks()] == [("other", "a")]


async def test_webhook_store_keeps_webhooks_across_reopening(tmp_path: Path) -> None:
    # Arrange
    store = await SqliteStore.open(tmp_path)
    await store.create_cache("cache")
    await store.put_webhook(_hook("a"))
    await store.close()

    # Act
    reopened = await SqliteStore.open(tmp_path)
    try:
        listed = await reopened.list_webhooks()
    finally:
        await reopened.close()

    # Assert
    assert listed == [_hook("a")]


@pytest.fixture
async def redis_store(redis_server: object) -> AsyncIterator[RedisStore]:
    opened = await RedisStore.open(redis_server.url, prefix=f"lease{next(_prefixes)}:")  # type: ignore[attr-defined]
    await opened.create_cache("cache")
    yield opened
    await opened.close()


async def test_one_holder_at_a_time_moves_the_cursor(redis_store: RedisStore) -> None:
    # Arrange
    await redis_store.put_webhook(_hook("a"))

    # Act
    first = await redis_store.take_webhook_lease("cache", "a", "node-1", 30)
    second = await redis_store.take_webhook_lease("cache", "a", "node-2", 30)
    extended = await redis_store.take_webhook_lease("cache", "a", "node-1", 30)
    saved_by_other = await redis_store.save_webhook_cursor("cache", "a", "node-2", 7, 3)
    saved = await redis_store.save_webhook_cursor("cache", "a", "node-1", 7, 4)
    await redis_store.drop_webhook_lease("cache", "a", "node-2")  # not its lease: no effect
    still_held = await redis_store.take_webhook_lease("cache", "a", "node-2", 30)
    await redis_store.drop_webhook_lease("cache", "a", "node-1")
    taken_over = await redis_store.take_webhook_lease("cache", "a", "node-2", 30)

    # Assert
    assert (first, second, extended) == (True, False, True)
    assert (saved_by_other, saved) == (False, True)
    assert (still_held, taken_over) == (False, True)
    assert await redis_store.load_webhook_cursor("cache", "a") == (7, 4)


async def test_an_expired_lease_can_be_taken(redis_store: RedisStore) -> None:
    # Arrange
    await redis_store.put_webhook(_hook("a"))
    await redis_store.take_webhook_lease("cache", "a", "node-1", 0.001)

    # Act
    taken = False
    while not taken:  # the lease runs for 1 ms of Redis' clock
        taken = await redis_store.take_webhook_lease("cache", "a", "node-2", 30)

    # Assert
    assert taken


@pytest.mark.parametrize(
    ("change", "kept"),
    [("delete-webhook", False), ("new-topic", False), ("delete-cache", False), ("same-topic", True)],
)
async def test_the_cursor_goes_with_the_webhook_or_its_topic(redis_store: RedisStore, change: str, kept: bool) -> None:
    # Arrange
    await redis_store.put_webhook(_hook("a"))
    await redis_store.take_webhook_lease("cache", "a", "node-1", 30)
    await redis_store.save_webhook_cursor("cache", "a", "node-1", 7, 4)

    # Act
    if change == "delete-webhook":
        await redis_store.delete_webhook("cache", "a")
    elif change == "delete-cache":
        await redis_store.delete_cache("cache")
    else:
        await redis_store.put_webhook(_hook("a", topic="other" if change == "new-topic" else "topic", secret="x"))

    # Assert
    assert await redis_store.load_webhook_cursor("cache", "a") == ((7, 4) if kept else None)
