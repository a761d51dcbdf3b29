"""The SQLite store: one file in the data directory, every write in a transaction.

SQLite calls run on a worker thread (they are rare: cache management and a periodic page floor), so the
event loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS caches (
    name TEXT PRIMARY KEY,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

_PAGE_FLOOR = "sequence_page_floor"


class SqliteStore:
    """Caches and server metadata in ``<data_dir>/tidings.sqlite3`` (WAL mode)."""

    FILENAME = "tidings.sqlite3"

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / self.FILENAME
        self._connection: sqlite3.Connection | None = None
        # One connection used from one worker thread at a time.
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, data_dir: Path) -> SqliteStore:
        """Open (creating if needed) the store in ``data_dir``."""
        store = cls(data_dir)
        await asyncio.to_thread(store._open)
        return store

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.executescript(_SCHEMA)
        self._connection = connection

    def _db(self) -> sqlite3.Connection:
        if self._connection is None:
            raise RuntimeError("the store is closed")
        return self._connection

    async def list_caches(self) -> list[str]:
        rows = await self._query("SELECT name FROM caches ORDER BY name")
        return [str(row[0]) for row in rows]

    async def create_cache(self, cache_name: str) -> bool:
        changed = await self._execute(
            "INSERT OR IGNORE INTO caches (name, created_at) VALUES (?, ?)", (cache_name, time.time())
        )
        return changed == 1

    async def delete_cache(self, cache_name: str) -> bool:
        changed = await self._execute("DELETE FROM caches WHERE name = ?", (cache_name,))
        return changed == 1

    async def load_page_floor(self) -> int:
        rows = await self._query("SELECT value FROM meta WHERE key = ?", (_PAGE_FLOOR,))
        return int(str(rows[0][0])) if rows else 0

    async def save_page_floor(self, sequence_page: int) -> None:
        await self._execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (_PAGE_FLOOR, str(sequence_page)),
        )

    async def close(self) -> None:
        async with self._lock:
            if self._connection is not None:
                connection, self._connection = self._connection, None
                await asyncio.to_thread(connection.close)

    async def _query(self, query: str, parameters: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        async with self._lock:
            db = self._db()
            return await asyncio.to_thread(lambda: db.execute(query, parameters).fetchall())

    async def _execute(self, statement: str, parameters: tuple[object, ...]) -> int:
        async with self._lock:
            db = self._db()

            # Autocommit: each statement is its own transaction.
            return await asyncio.to_thread(lambda: db.execute(statement, parameters).rowcount)
