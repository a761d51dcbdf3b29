"""Webhooks: named subscriptions of a cache's topic that the server POSTs to a URL (docs/webhooks.md).

The registry owns what a webhook *is* (names, URL, signing secret, the cache it belongs to) and keeps it in the
store; delivering to it is the dispatcher's (`WebhookDispatcher`), which the registry tells about every change
through `WebhookListener`. The core knows nothing of webhooks: the registry asks the service whether a cache exists,
and hears from it when one is deleted.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from tidings.server.core import (
    ANONYMOUS,
    CacheNotFound,
    InvalidArgument,
    Principal,
    TopicsService,
    WebhookNotFound,
    require_super_user,
    validate_name,
)

# Longer URLs are refused: a destination is configuration, not a payload.
MAX_URL_LENGTH = 2048


@dataclass(frozen=True, slots=True)
class Webhook:
    """A webhook: the messages of ``topic_name`` in ``cache_name`` are POSTed to ``url``, signed with ``secret``."""

    cache_name: str
    name: str
    topic_name: str
    url: str
    secret: str


class WebhookStore(Protocol):
    """Where webhooks are kept (both stores implement it); deleting a cache deletes its webhooks there too."""

    @property
    def shared(self) -> bool:
        """Whether other servers change this store too (then reads go to the store, not this registry's copy)."""
        ...

    async def list_webhooks(self) -> list[Webhook]:
        """Every webhook of every cache, sorted by (cache, name)."""
        ...

    async def put_webhook(self, webhook: Webhook) -> Webhook | None:
        """Create ``webhook``, or replace the topic and URL of the one with its name, keeping that one's secret.

        Returns the webhook as stored, or None when its cache does not exist (checked in the same transaction).
        """
        ...

    async def set_webhook_secret(self, cache_name: str, name: str, secret: str) -> bool:
        """Replace a webhook's secret; False if there is no such webhook."""
        ...

    async def delete_webhook(self, cache_name: str, name: str) -> bool:
        """Delete a webhook; False if there was none."""
        ...


class WebhookListener(Protocol):
    """Told about every webhook change the registry makes or learns (the dispatcher)."""

    async def webhook_put(self, webhook: Webhook) -> None:
        """``webhook`` was created, or replaced (its topic, URL or secret may have changed).

        Returns once messages published from now on will be delivered (PutWebhook answers after this).
        """
        ...

    def webhook_deleted(self, cache_name: str, name: str) -> None:
        """The webhook is gone (deleted, or its cache was)."""
        ...


def new_secret() -> str:
    """A fresh signing secret: 256 random bits, URL-safe text."""
    return secrets.token_urlsafe(32)


def validate_url(url: str) -> str:
    """Return ``url`` if it is an absolute http(s) URL with a host, else raise `InvalidArgument`."""
    if not url:
        raise InvalidArgument("post_url must not be empty")
    if len(url) > MAX_URL_LENGTH:
        raise InvalidArgument(f"post_url must be at most {MAX_URL_LENGTH} characters")
    if any(ord(character) <= 0x20 or ord(character) == 0x7F for character in url):
        raise InvalidArgument("post_url must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError for a port out of range or not a number
    except ValueError as error:
        raise InvalidArgument(f"post_url is not a valid URL: {error}") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidArgument("post_url must be an http:// or https:// URL")
    if not parts.hostname:
        raise InvalidArgument("post_url must name a host")
    if port == 0:
        raise InvalidArgument("post_url must not use port 0")
    if parts.username is not None or parts.password is not None:
        raise InvalidArgument("post_url must not carry credentials (user:password@)")
    return url


class WebhookRegistry:
    """Creates, replaces, rotates, lists and deletes webhooks (super-user only), keeping them in the store."""

    def __init__(
        self, service: TopicsService, store: WebhookStore, *, secrets_from: Callable[[], str] = new_secret
    ) -> None:
        self._service = service
        self._store = store
        self._new_secret = secrets_from
        self._webhooks: dict[tuple[str, str], Webhook] = {}
        self._listeners: list[WebhookListener] = []
        self._lock = asyncio.Lock()
        service.on_cache_deleted(self._cache_deleted)

    async def start(self) -> None:
        """Load the stored webhooks (a restart keeps them); listeners added before are told of each."""
        await self.refresh()

    async def refresh(self) -> None:
        """Make this registry what the store holds (other servers may share it) and tell listeners the changes."""
        async with self._lock:
            stored = {(webhook.cache_name, webhook.name): webhook for webhook in await self._store.list_webhooks()}
            for key in [key for key in self._webhooks if key not in stored]:
                self._forget(*key)
            for key, webhook in stored.items():
                if self._webhooks.get(key) != webhook:
                    await self._remember(webhook)

    async def add_listener(self, listener: WebhookListener) -> None:
        """Tell ``listener`` about every webhook known now and every change from now on."""
        async with self._lock:
            self._listeners.append(listener)
            for webhook in list(self._webhooks.values()):
                await listener.webhook_put(webhook)

    @property
    def webhooks(self) -> list[Webhook]:
        """Every webhook this registry knows, sorted by (cache, name)."""
        return [self._webhooks[key] for key in sorted(self._webhooks)]

    async def put(
        self, cache_name: str, name: str, topic_name: str, url: str, principal: Principal = ANONYMOUS
    ) -> Webhook:
        """Create a webhook, or replace the topic and URL of an existing one (its secret stays)."""
        validate_name("cache_name", cache_name)
        validate_name("webhook_name", name)
        validate_name("topic_name", topic_name)
        validate_url(url)
        require_super_user(principal, "webhook")
        async with self._lock:
            await self._require_cache(cache_name)
            stored = await self._store.put_webhook(Webhook(cache_name, name, topic_name, url, self._new_secret()))
            if stored is None:
                raise CacheNotFound(cache_name)
            await self._remember(stored)
            return stored

    async def get(self, cache_name: str, name: str, principal: Principal = ANONYMOUS) -> Webhook:
        """The webhook (with its secret); `WebhookNotFound` if the cache has none by that name."""
        validate_name("cache_name", cache_name)
        validate_name("webhook_name", name)
        require_super_user(principal, "webhook")
        await self._require_cache(cache_name)
        await self._refresh_if_shared()
        webhook = self._webhooks.get((cache_name, name))
        if webhook is None:
            raise WebhookNotFound(cache_name, name)
        return webhook

    async def rotate_secret(self, cache_name: str, name: str, principal: Principal = ANONYMOUS) -> Webhook:
        """Give the webhook a new secret; deliveries from now on are signed with it only."""
        validate_name("cache_name", cache_name)
        validate_name("webhook_name", name)
        require_super_user(principal, "webhook")
        await self._refresh_if_shared()
        async with self._lock:
            await self._require_cache(cache_name)
            current = self._webhooks.get((cache_name, name))
            secret = self._new_secret()
            if current is None or not await self._store.set_webhook_secret(cache_name, name, secret):
                raise WebhookNotFound(cache_name, name)
            rotated = Webhook(cache_name, name, current.topic_name, current.url, secret)
            await self._remember(rotated)
            return rotated

    async def list(self, cache_name: str, principal: Principal = ANONYMOUS) -> list[Webhook]:
        """The cache's webhooks, sorted by name."""
        validate_name("cache_name", cache_name)
        require_super_user(principal, "webhook")
        await self._require_cache(cache_name)
        await self._refresh_if_shared()
        return [webhook for webhook in self.webhooks if webhook.cache_name == cache_name]

    async def delete(self, cache_name: str, name: str, principal: Principal = ANONYMOUS) -> None:
        """Delete a webhook and stop its deliveries; deleting one that does not exist succeeds (idempotent)."""
        validate_name("cache_name", cache_name)
        validate_name("webhook_name", name)
        require_super_user(principal, "webhook")
        async with self._lock:
            await self._require_cache(cache_name)
            await self._store.delete_webhook(cache_name, name)
            self._forget(cache_name, name)

    async def _refresh_if_shared(self) -> None:
        """Read what other servers changed before answering from this registry's copy."""
        if self._store.shared:
            await self.refresh()

    async def _require_cache(self, cache_name: str) -> None:
        if not await self._service.find_cache(cache_name):
            raise CacheNotFound(cache_name)

    def _cache_deleted(self, cache_name: str) -> None:
        """The service deleted the cache (the store deleted its webhooks with it)."""
        for key in [key for key in self._webhooks if key[0] == cache_name]:
            self._forget(*key)

    async def _remember(self, webhook: Webhook) -> None:
        self._webhooks[webhook.cache_name, webhook.name] = webhook
        for listener in self._listeners:
            await listener.webhook_put(webhook)

    def _forget(self, cache_name: str, name: str) -> None:
        if self._webhooks.pop((cache_name, name), None) is not None:
            for listener in self._listeners:
                listener.webhook_deleted(cache_name, name)
