"""Which node delivers a webhook: with several on one Redis, a lease per webhook and its cursor beside it; a
server alone delivers every webhook (`SoleNodeLeases`, which always grant)."""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Protocol

logger = logging.getLogger("tidings.server.webhooks")


class Leases(Protocol):
    """What the dispatcher asks before and while it delivers a webhook (`WebhookLeases`, `SoleNodeLeases`)."""

    @property
    def ttl(self) -> float:
        """Seconds a lease outlives its last extension."""
        ...

    async def wait_renewal(self) -> None:
        """Return when held leases are to be extended and free ones sought (never, where none can be lost)."""
        ...

    async def take(self, cache_name: str, name: str) -> bool:
        """Take or extend the lease of a webhook; False while another node holds it."""
        ...

    def taken(self, cache_name: str, name: str) -> None:
        """This node starts delivering the webhook (it took the lease): said where other nodes could."""
        ...

    async def drop(self, cache_name: str, name: str) -> None:
        """Give a held lease up."""
        ...

    async def cursor(self, cache_name: str, name: str) -> tuple[int, int] | None:
        """(page, next sequence number) the last holder recorded, None if none did."""
        ...

    async def save(self, cache_name: str, name: str, sequence_page: int, next_sequence_number: int) -> bool:
        """Record the cursor while holding the lease; False if the lease is someone else's now."""
        ...


class SoleNodeLeases:
    """The leases of a server that shares its store with no other: every lease is granted, none is ever lost,
    and no cursor is kept (a restart starts each webhook at the end of its topic, whose messages were in
    memory)."""

    ttl = 0.0

    async def wait_renewal(self) -> None:
        await asyncio.Event().wait()  # nothing to extend, ever

    async def take(self, cache_name: str, name: str) -> bool:
        return True

    def taken(self, cache_name: str, name: str) -> None:
        return None  # no other node could deliver it

    async def drop(self, cache_name: str, name: str) -> None:
        return None

    async def cursor(self, cache_name: str, name: str) -> tuple[int, int] | None:
        return None

    async def save(self, cache_name: str, name: str, sequence_page: int, next_sequence_number: int) -> bool:
        return True


class LeaseStore(Protocol):
    """What the Redis store offers for leases and cursors (`tidings.server.store.redis.RedisStore`)."""

    async def take_webhook_lease(self, cache_name: str, name: str, holder: str, ttl: float) -> bool: ...

    async def drop_webhook_lease(self, cache_name: str, name: str, holder: str) -> None: ...

    async def load_webhook_cursor(self, cache_name: str, name: str) -> tuple[int, int] | None: ...

    async def save_webhook_cursor(
        self, cache_name: str, name: str, holder: str, sequence_page: int, next_sequence_number: int
    ) -> bool: ...


class WebhookLeases:
    """This node's side of the leases: one holder id per process, leases of ``ttl`` seconds.

    A holder extends its leases well within ``ttl`` (`renew_every`); a node that stops extending (killed,
    partitioned) loses them after ``ttl`` and another node takes over from the stored cursor.
    """

    def __init__(self, store: LeaseStore, ttl: float = 10.0, holder: str | None = None) -> None:
        if ttl <= 0:
            raise ValueError("the lease time must be positive")
        self.ttl = ttl
        self.holder = holder or secrets.token_hex(8)
        self._store = store

    @property
    def renew_every(self) -> float:
        """How often held leases are extended and free ones sought."""
        return self.ttl / 4

    async def wait_renewal(self) -> None:
        """Sleep `renew_every`: held leases are extended well within ``ttl``."""
        await asyncio.sleep(self.renew_every)

    async def take(self, cache_name: str, name: str) -> bool:
        """Take or extend the lease of a webhook; False while another node holds it."""
        return await self._store.take_webhook_lease(cache_name, name, self.holder, self.ttl)

    def taken(self, cache_name: str, name: str) -> None:
        """Log that this node delivers the webhook now."""
        logger.info("webhook %r of cache %r: delivering from this node", name, cache_name)

    async def drop(self, cache_name: str, name: str) -> None:
        """Give a held lease up."""
        await self._store.drop_webhook_lease(cache_name, name, self.holder)

    async def cursor(self, cache_name: str, name: str) -> tuple[int, int] | None:
        """(page, next sequence number) the last holder recorded, None if none did."""
        return await self._store.load_webhook_cursor(cache_name, name)

    async def save(self, cache_name: str, name: str, sequence_page: int, next_sequence_number: int) -> bool:
        """Record the cursor while holding the lease; False if the lease is someone else's now."""
        return await self._store.save_webhook_cursor(cache_name, name, self.holder, sequence_page, next_sequence_number)
