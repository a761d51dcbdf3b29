"""`RedisBackend`: servers sharing topics and state in one Redis or Redis Cluster, on one connection set."""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit

from tidings.server.backend._seam import RefreshLog, ServerStore, secret_from_file, secret_is_configured
from tidings.server.config import Settings
from tidings.server.core import Unavailable
from tidings.server.engine.redis import RedisEngine
from tidings.server.redis_io import Shards
from tidings.server.store.redis import RedisStore
from tidings.server.webhooks import WebhookLeases, WebhookRegistry


class RedisBackend:
    """The Redis engine, the Redis store and webhook leases in Redis, on connections the backend owns (`Shards`:
    the links and pub/sub connections of one Redis, or of a cluster's masters; a cluster is
    ``settings.redis_cluster``).

    Engine, store and leases share one connection set, so a node holds one command link and one pub/sub
    connection per Redis master. Whichever of them first meets a frozen Redis takes the link down for all: a
    publish then is refused unsent (UNAVAILABLE) rather than sent and unanswered (DEADLINE_EXCEEDED).

    The data directory holds nothing but the deployment's admin key file, if this node writes it.
    """

    def __init__(self, settings: Settings) -> None:
        if settings.redis_url is None:
            raise ValueError("the Redis backend needs settings.redis_url")
        self._settings = settings
        self._url = settings.redis_url
        self.name = display_name(settings.redis_url, cluster=settings.redis_cluster)
        self._opened: tuple[RedisEngine, RedisStore, WebhookLeases] | None = None
        self._closing = contextlib.AsyncExitStack()

    @property
    def engine(self) -> RedisEngine:
        """The Redis engine (once opened)."""
        return self._parts()[0]

    @property
    def store(self) -> RedisStore:
        """The Redis store (once opened)."""
        return self._parts()[1]

    @property
    def leases(self) -> WebhookLeases:
        """This node's webhook leases (once opened)."""
        return self._parts()[2]

    def _parts(self) -> tuple[RedisEngine, RedisStore, WebhookLeases]:
        if self._opened is None:
            raise RuntimeError("backend is not open")
        return self._opened

    async def __aenter__(self) -> Self:
        """Connect, start the engine; `OSError` naming the flag if Redis cannot be reached."""
        settings = self._settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        limits = settings.limits
        async with contextlib.AsyncExitStack() as stack:
            shards = Shards(self._url, cluster=settings.redis_cluster)
            stack.push_async_callback(shards.close)
            store = RedisStore(shards)
            stack.push_async_callback(store.close)
            engine = RedisEngine(
                shards, limits.retention_messages, limits.retention_bytes, limits.topic_idle_ttl,
                follow_delay=settings.test_follow_delay,
            )  # fmt: skip
            stack.push_async_callback(engine.close)
            try:
                await shards.start()
                await engine.start()
            except Unavailable as error:
                raise OSError(f"cannot use {settings.redis_flag}: {error.message}") from None
            self._opened = (engine, store, WebhookLeases(store, ttl=settings.test_webhook_lease_seconds))
            self._closing = stack.pop_all()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Stop the engine, close the store, then the connections."""
        await self._closing.aclose()

    async def signing_secret(self) -> bytes:
        """``$TIDINGS_SECRET_KEY`` if set (a file beside it is never read then), else the secret every node
        shares in Redis."""
        if secret_is_configured():
            return secret_from_file(self._settings.data_dir)
        return await self.store.load_or_create_secret()

    async def watch_webhooks(self, registry: WebhookRegistry, interval: float, log: RefreshLog) -> None:
        """Pick up webhooks other nodes created, changed or deleted within ``interval`` seconds."""
        seen = -1  # refresh once at once: a change may have come since the registry loaded
        while True:
            await asyncio.sleep(interval)
            try:
                version = await self.store.webhooks_version()
                if version != seen:
                    await registry.refresh()
                    seen = version
            except Exception as error:
                log.failed(error, "webhooks")
            else:
                log.succeeded("webhooks")

    async def open_store(self, *, create: bool = True) -> ServerStore:
        """The Redis store on connections of its own; ``create`` makes the data directory for the admin key."""
        if create:
            self._settings.data_dir.mkdir(parents=True, exist_ok=True)
        return await RedisStore.open(self._url, cluster=self._settings.redis_cluster)


def display_name(url: str, *, cluster: bool) -> str:
    """``redis at host:port`` (``redis cluster at ...``; a socket's path for ``unix://``), for the log."""
    where = urlsplit(url)
    return (
        ("redis cluster at " if cluster else "redis at ")
        + f"{where.hostname or where.path}"
        + (f":{where.port}" if where.port else "")
    )
