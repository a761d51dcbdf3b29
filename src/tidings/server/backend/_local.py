"""`LocalBackend`: a server alone, with its topics in memory and its state in the data directory."""

from __future__ import annotations

import contextlib
from types import TracebackType
from typing import Self

from tidings.server.backend._seam import RefreshLog, ServerStore, secret_from_file
from tidings.server.config import Settings
from tidings.server.engine.memory import MemoryEngine
from tidings.server.store import DataDirectoryLock
from tidings.server.store.sqlite import SqliteStore
from tidings.server.webhooks import SoleNodeLeases, WebhookRegistry


class LocalBackend:
    """The memory engine, the SQLite store in the data directory (locked: one server per directory) and leases
    that always grant (this server delivers every webhook)."""

    name = "memory"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.leases = SoleNodeLeases()
        self._opened: tuple[MemoryEngine, SqliteStore] | None = None
        self._closing = contextlib.AsyncExitStack()

    @property
    def engine(self) -> MemoryEngine:
        """The memory engine (once opened)."""
        return self._parts()[0]

    @property
    def store(self) -> SqliteStore:
        """The SQLite store (once opened)."""
        return self._parts()[1]

    def _parts(self) -> tuple[MemoryEngine, SqliteStore]:
        if self._opened is None:
            raise RuntimeError("backend is not open")
        return self._opened

    async def __aenter__(self) -> Self:
        """Lock the data directory, open the store in it, make the engine."""
        data_dir = self._settings.data_dir
        async with contextlib.AsyncExitStack() as stack:
            lock = DataDirectoryLock(data_dir)
            lock.acquire()
            stack.callback(lock.release)
            store = await SqliteStore.open(data_dir)
            stack.push_async_callback(store.close)
            limits = self._settings.limits
            engine = MemoryEngine(limits.retention_messages, limits.retention_bytes, limits.max_retained_bytes)
            self._opened = (engine, store)
            self._closing = stack.pop_all()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Close the store, then release the data directory."""
        await self._closing.aclose()

    async def signing_secret(self) -> bytes:
        """``$TIDINGS_SECRET_KEY``, else ``secret.key`` in the data directory."""
        return secret_from_file(self._settings.data_dir)

    async def watch_webhooks(self, registry: WebhookRegistry, interval: float, log: RefreshLog) -> None:
        """Nothing to watch: only this server changes its store's webhooks."""

    async def open_store(self, *, create: bool = True) -> ServerStore:
        """The SQLite store in the data directory (not locked: key commands run beside the server)."""
        return await SqliteStore.open(self._settings.data_dir, create=create)
