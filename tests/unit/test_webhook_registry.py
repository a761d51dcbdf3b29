"""WebhookRegistry: create/replace, secrets, listing, deletion, validation and permissions (PROTOCOL.md
*Webhooks*), over a real SQLite store."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tidings.server.core import (
    CacheNotFound,
    InvalidArgument,
    PermissionDenied,
    Principal,
    TopicsService,
    WebhookNotFound,
)
from tidings.server.store.sqlite import SqliteStore
from tidings.server.webhooks import Webhook, WebhookRegistry

from .conftest import CACHE, TOPIC, MakeService

URL = "http://127.0.0.1:9/hook"


class Recorder:
    """A `WebhookListener` that records what it is told."""

    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    async def webhook_put(self, webhook: Webhook) -> None:
        self.events.append(("put", webhook))

    def webhook_deleted(self, cache_name: str, name: str) -> None:
        self.events.append(("deleted", (cache_name, name)))


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = await SqliteStore.open(tmp_path)
    yield store
    await store.close()


@pytest.fixture
async def service(sqlite_store: SqliteStore, make_service: MakeService) -> TopicsService:
    return await make_service(store=sqlite_store)


@pytest.fixture
async def registry(service: TopicsService, sqlite_store: SqliteStore) -> WebhookRegistry:
    counter = itertools.count(1)
    registry = WebhookRegistry(service, sqlite_store, secrets_from=lambda: f"secret-{next(counter)}")
    await registry.start()
    return registry


async def test_put_creates_with_a_new_secret_and_replace_keeps_it(registry: WebhookRegistry) -> None:
    # Act
    created = await registry.put(CACHE, "hook", TOPIC, URL)
    replaced = await registry.put(CACHE, "hook", "other-topic", "https://example.test/x")

    # Assert
    assert created == Webhook(CACHE, "hook", TOPIC, URL, "secret-1")
    assert replaced == Webhook(CACHE, "hook", "other-topic", "https://example.test/x", "secret-1")
    assert await registry.list(CACHE) == [replaced]


async def test_get_and_rotate_secret(registry: WebhookRegistry) -> None:
    # Arrange
    await registry.put(CACHE, "hook", TOPIC, URL)

    # Act
    before = await registry.get(CACHE, "hook")
    rotated = await registry.rotate_secret(CACHE, "hook")
    after = await registry.get(CACHE, "hook")

    # Assert
    assert before.secret == "secret-1"
    assert rotated.secret == after.secret == "secret-2"


async def test_unknown_webhook_is_not_found_for_get_and_rotate(registry: WebhookRegistry) -> None:
    with pytest.raises(WebhookNotFound):
        await registry.get(CACHE, "nope")
    with pytest.raises(WebhookNotFound):
        await registry.rotate_secret(CACHE, "nope")


async def test_delete_removes_and_is_idempotent(registry: WebhookRegistry) -> None:
    # Arrange
    await registry.put(CACHE, "a", TOPIC, URL)
    await registry.put(CACHE, "b", TOPIC, URL)

    # Act
    await registry.delete(CACHE, "a")
    await registry.delete(CACHE, "a")

    # Assert
    assert [webhook.name for webhook in await registry.list(CACHE)] == ["b"]


@pytest.mark.parametrize("call", ["put", "get", "rotate_secret", "list", "delete"])
async def test_unknown_cache_is_not_found(registry: WebhookRegistry, call: str) -> None:
    calls = {
        "put": lambda: registry.put("missing", "hook", TOPIC, URL),
        "get": lambda: registry.get("missing", "hook"),
        "rotate_secret": lambda: registry.rotate_secret("missing", "hook"),
        "list": lambda: registry.list("missing"),
        "delete": lambda: registry.delete("missing", "hook"),
    }
    with pytest.raises(CacheNotFound):
        await calls[call]()


@pytest.mark.parametrize(
    ("name", "topic", "url", "field"),
    [
        pytest.param("", TOPIC, URL, "webhook_name", id="empty-name"),
        pytest.param("a\nb", TOPIC, URL, "webhook_name", id="control-in-name"),
        pytest.param("x" * 256, TOPIC, URL, "webhook_name", id="long-name"),
        pytest.param("hook", "", URL, "topic_name", id="empty-topic"),
        pytest.param("hook", TOPIC, "", "post_url", id="empty-url"),
        pytest.param("hook", TOPIC, "ftp://example.test/x", "post_url", id="ftp"),
        pytest.param("hook", TOPIC, "example.test/x", "post_url", id="no-scheme"),
        pytest.param("hook", TOPIC, "http:///path", "post_url", id="no-host"),
        pytest.param("hook", TOPIC, "http://exa mple.test/", "post_url", id="space"),
        pytest.param("hook", TOPIC, "http://example.test:99999/", "post_url", id="bad-port"),
        pytest.param("hook", TOPIC, "http://user:pw@example.test/", "post_url", id="credentials"),
    ],
)
async def test_put_refuses_bad_names_and_urls(
    registry: WebhookRegistry, name: str, topic: str, url: str, field: str
) -> None:
    with pytest.raises(InvalidArgument, match=field):
        await registry.put(CACHE, name, topic, url)
    assert await registry.list(CACHE) == []


async def test_every_operation_needs_a_super_user(registry: WebhookRegistry) -> None:
    restricted = Principal(super_user=False)
    await registry.put(CACHE, "hook", TOPIC, URL)
    for call in (
        lambda: registry.put(CACHE, "hook", TOPIC, URL, restricted),
        lambda: registry.get(CACHE, "hook", restricted),
        lambda: registry.rotate_secret(CACHE, "hook", restricted),
        lambda: registry.list(CACHE, restricted),
        lambda: registry.delete(CACHE, "hook", restricted),
    ):
        with pytest.raises(PermissionDenied):
            await call()


async def test_deleting_the_cache_deletes_its_webhooks(
    service: TopicsService, registry: WebhookRegistry, sqlite_store: SqliteStore
) -> None:
    # Arrange
    recorder = Recorder()
    await registry.add_listener(recorder)
    await registry.put(CACHE, "hook", TOPIC, URL)

    # Act
    await service.delete_cache(CACHE)
    await service.create_cache(CACHE)

    # Assert
    assert await registry.list(CACHE) == []
    assert await sqlite_store.list_webhooks() == []
    assert recorder.events[-1] == ("deleted", (CACHE, "hook"))


async def test_listeners_hear_of_known_webhooks_and_every_change(registry: WebhookRegistry) -> None:
    # Arrange
    first = await registry.put(CACHE, "a", TOPIC, URL)
    recorder = Recorder()

    # Act
    await registry.add_listener(recorder)
    second = await registry.put(CACHE, "b", TOPIC, URL)
    rotated = await registry.rotate_secret(CACHE, "a")
    await registry.delete(CACHE, "b")

    # Assert
    assert recorder.events == [
        ("put", first),
        ("put", second),
        ("put", rotated),
        ("deleted", (CACHE, "b")),
    ]


async def test_a_new_registry_loads_stored_webhooks(
    service: TopicsService, registry: WebhookRegistry, sqlite_store: SqliteStore
) -> None:
    # Arrange
    created = await registry.put(CACHE, "hook", TOPIC, URL)

    # Act
    reloaded = WebhookRegistry(service, sqlite_store)
    await reloaded.start()

    # Assert
    assert reloaded.webhooks == [created]
