"""The directory of caches: which caches this process knows, and how that follows a store other servers share.

With a store of its own (SQLite) a server is the only one to change its caches, and its view is the store. With a
shared store (several servers on one Redis) the store is the one directory: listing and looking up read it, and
the view that publish and subscribe check (a `CacheState` per cache, with its rate bucket and live topics)
follows it. The store's caches version is checked twice per ``refresh_interval`` and the view read again when it
moved, so the view never lags the store longer than that (a check and a refresh included), even when the engine's
announcement of a deletion was lost.

A cache learnt from a lookup alone (a publish to a cache another server created) may have been deleted between
the store's answer and this process acting on it: the view then counts as unconfirmed, and the next check reads
the store again instead of trusting the version.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from tidings.server.core._errors import (
    CacheAlreadyExists,
    CacheNotFound,
    Limit,
    LimitExceeded,
    TopicsError,
    Unavailable,
)
from tidings.server.core._failures import FailureLog
from tidings.server.core._ports import Store
from tidings.server.core._topics import CacheState

logger = logging.getLogger("tidings.server")

T = TypeVar("T")


class CacheDirectory:
    """The caches this process knows, by name, kept as the store has them; owned by the topics service.

    ``new_state`` makes the `CacheState` of a cache learnt; ``forgotten`` is called with each state forgotten (a
    cache deleted here or elsewhere), to end its topics' subscriptions. ``sleep`` is how the watch of a shared
    store waits between checks (tests step it).
    """

    def __init__(
        self,
        store: Store,
        new_state: Callable[[str], CacheState],
        forgotten: Callable[[CacheState], None],
        *,
        refresh_interval: float = 0.5,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not (0 < refresh_interval < math.inf):
            raise ValueError("cache_refresh_interval must be positive and finite")
        self.lock = asyncio.Lock()  # held by whoever changes the caches: create, delete, refresh
        self._store = store
        self._new_state = new_state
        self._forgotten = forgotten
        self._refresh_interval = refresh_interval
        self._sleep = sleep
        self._states: dict[str, CacheState] = {}
        # The store's caches version the view was read at; None while a cache learnt from a lookup is unconfirmed.
        self._version: int | None = 0
        self._looked_up: set[str] | None = None  # while `refresh` reads the store: the caches learnt meanwhile
        self._watch: asyncio.Task[None] | None = None
        self._watch_log = FailureLog(logger, "reading the caches from the store")
        # Unexpected errors of the reads made for requests (Redis unreachable is the watch's to log).
        self._listing_log = FailureLog(logger, "listing the caches of the store")
        self._lookup_log = FailureLog(logger, "looking up caches in the store")

    # --- the view --------------------------------------------------------------------------------

    def get(self, cache_name: str) -> CacheState | None:
        """The state of the cache, if this process knows it."""
        return self._states.get(cache_name)

    def __contains__(self, cache_name: object) -> bool:
        return cache_name in self._states

    def __len__(self) -> int:
        return len(self._states)

    def states(self) -> Iterable[CacheState]:
        """The state of every cache this process knows."""
        return self._states.values()

    # --- lifecycle -------------------------------------------------------------------------------

    async def load(self) -> None:
        """Read the caches from the store."""
        # The version first: a change made while the list is read shows as a newer version.
        self._version = await self._store.caches_version()
        for name in await self._store.list_caches():
            self._states[name] = self._new_state(name)

    def follow(self) -> None:
        """With a shared store: follow it (`refresh` when it changes) until `close`."""
        if self._store.shared and self._watch is None:
            self._watch = asyncio.create_task(self._watch_store(), name="tidings-cache-watch")

    async def close(self) -> None:
        """Stop following the store; idempotent."""
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch

    # --- reading the store -----------------------------------------------------------------------

    async def names(self) -> list[str]:
        """The names of all caches, sorted: a shared store is read, so every server answers the same."""
        if not self._store.shared:
            return sorted(self._states)
        return await self._read(self._store.list_caches(), self._listing_log)

    async def find(self, cache_name: str) -> CacheState | None:
        """The cache's state if it exists; a shared store is asked, so a cache another server created or deleted
        counts as the store says now (one it created is learnt)."""
        if not self._store.shared:
            return self._states.get(cache_name)
        if not await self._read(self._store.cache_exists(cache_name), self._lookup_log):
            return None
        known = self._states.get(cache_name)  # after the lookup: a refresh may have learnt it meanwhile
        if known is not None:
            return known
        # A deletion may have overtaken the store's answer: the next check reads the store again to settle it.
        self._version = None
        if self._looked_up is not None:
            self._looked_up.add(cache_name)
        return self._learn(cache_name)

    async def refresh(self) -> None:
        """Make the view what the shared store holds now: learn the caches other servers created, and forget
        those they deleted (``forgotten`` ends their subscriptions, as a deletion here does). Raises what the
        store raises."""
        async with self.lock:
            self._looked_up = set()
            try:
                version = await self._store.caches_version()
                names = set(await self._store.list_caches())
                looked_up = self._looked_up
            finally:
                self._looked_up = None
            # A cache learnt from a lookup while the store was read may have been created after the read: kept.
            # It may as well be one whose deletion overtook the lookup, so unless the read has it, it stays
            # unconfirmed and the next check reads again.
            kept = names | looked_up
            for cache in [cache for name, cache in self._states.items() if name not in kept]:
                self._forget(cache)
            for name in names.difference(self._states):
                self._learn(name)
            self._version = version if looked_up <= names else None

    # --- changes ---------------------------------------------------------------------------------

    async def create(self, cache_name: str, max_caches: int) -> None:
        """Create ``cache_name`` in the store and learn it. `CacheAlreadyExists` if it exists, also when another
        server sharing the store created it; `LimitExceeded` at ``max_caches`` (every cache of the store counts)."""
        async with self.lock:
            names = await self.names()
            if cache_name in names:
                raise CacheAlreadyExists(cache_name)
            if len(names) >= max_caches:
                raise LimitExceeded(Limit.CACHE_COUNT, f"cache limit exceeded: at most {max_caches} caches")
            if not await self._store.create_cache(cache_name):
                raise CacheAlreadyExists(cache_name)
            self.created(cache_name)

    async def delete(self, cache_name: str) -> None:
        """Delete ``cache_name`` from the store and forget it; `CacheNotFound` if it did not exist (with a shared
        store: as the store says now; it is forgotten here all the same, another server deleted it)."""
        async with self.lock:
            if not self._store.shared and cache_name not in self._states:
                raise CacheNotFound(cache_name)
            deleted = await self._store.delete_cache(cache_name)
            self.deleted(cache_name)
            if self._store.shared and not deleted:
                raise CacheNotFound(cache_name)

    def created(self, cache_name: str) -> None:
        """This process created ``cache_name`` in the store (holding `lock`). A state of that name left from a
        cache another server deleted before this process heard of it is forgotten first."""
        self.deleted(cache_name)
        self._learn(cache_name)

    def deleted(self, cache_name: str) -> None:
        """``cache_name`` was deleted, here or (announced by the engine) by another server: forget it if known."""
        cache = self._states.get(cache_name)
        if cache is not None:
            self._forget(cache)

    # --- internals -------------------------------------------------------------------------------

    async def _watch_store(self) -> None:
        """`refresh` whenever the store's caches version moved (or the view is unconfirmed), checked twice per
        ``refresh_interval``."""
        while True:
            await self._sleep(self._refresh_interval / 2)
            try:
                if self._version is None or await self._store.caches_version() != self._version:
                    await self.refresh()
            except Exception as error:
                unexpected = None if isinstance(error, TopicsError) else error
                self._watch_log.failed(f"{_reason(error)}; retrying", exc_info=unexpected)
            else:
                self._watch_log.succeeded()

    async def _read(self, reading: Awaitable[T], failures: FailureLog) -> T:
        """The answer of a store call made for a request. An unexpected error is logged in ``failures`` (once per
        outage, with its traceback) and is `Unavailable` to the caller; a `TopicsError` (Redis unreachable) is
        the caller's as it is, and the watch logs the outage."""
        try:
            answer = await reading
        except TopicsError:
            raise
        except Exception as error:
            failures.failed(_reason(error), exc_info=error)
            raise Unavailable("the store is unreachable") from None
        failures.succeeded()
        return answer

    def _learn(self, cache_name: str) -> CacheState:
        """Start keeping ``cache_name``, which the store has."""
        cache = self._states[cache_name] = self._new_state(cache_name)
        return cache

    def _forget(self, cache: CacheState) -> None:
        if self._states.get(cache.name) is not cache:
            return  # forgotten already
        del self._states[cache.name]
        self._forgotten(cache)


def _reason(error: Exception) -> str:
    return error.message if isinstance(error, TopicsError) else f"{type(error).__name__}: {error}"
