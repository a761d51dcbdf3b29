"""Which node delivers a webhook, when several share one Redis: a lease per webhook, and its cursor beside it."""

from __future__ import annotations

import secrets
from typing import Protocol


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

    async def take(self, cache_name: str, name: str) -> bool:
        """Take or extend the lease of a webhook; False while another node holds it."""
        return await self._store.take_webhook_lease(cache_name, name, self.holder, self.ttl)

    async def drop(self, cache_name: str, name: str) -> None:
        """Give a held lease up."""
        await self._store.drop_webhook_lease(cache_name, name, self.holder)

    async def cursor(self, cache_name: str, name: str) -> tuple[int, int] | None:
        """(page, next sequence number) the last holder recorded, None if none did."""
        return await self._store.load_webhook_cursor(cache_name, name)

    async def save(self, cache_name: str, name: str, sequence_page: int, next_sequence_number: int) -> bool:
        """Record the cursor while holding the lease; False if the lease is someone else's now."""
        return await self._store.save_webhook_cursor(cache_name, name, self.holder, sequence_page, next_sequence_number)
