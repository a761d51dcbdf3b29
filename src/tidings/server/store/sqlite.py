"""The SQLite store: one file in the data directory, every write in a transaction.

SQLite calls run on one dedicated worker thread (they are rare: cache management, API keys, a periodic page
floor), so the event loop never waits on the disk, statements never overlap, and closing waits for any
statement still running, even one whose caller was cancelled.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from tidings.server.auth import MAX_TOKEN_LIFETIME, ApiKey, grants_from_json, grants_to_json
from tidings.server.store._datadir import DataDirectoryError
from tidings.server.webhooks import Webhook

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS caches (
    name TEXT PRIMARY KEY,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL,
    super_user INTEGER NOT NULL,
    grants TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL,
    revoked_at REAL
);
CREATE TABLE IF NOT EXISTS revoked_tokens (
    token_id TEXT PRIMARY KEY,
    revoked_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS webhooks (
    cache TEXT NOT NULL,
    name TEXT NOT NULL,
    topic TEXT NOT NULL,
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (cache, name)
);
"""

_PAGE_FLOOR = "sequence_page_floor"
_KEYS_VERSION = "api_keys_version"
_BUMP_KEYS_VERSION = (
    "INSERT INTO meta (key, value) VALUES (?, '1') ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1"
)


class SqliteStore:
    """Caches and server metadata in ``<data_dir>/tidings.sqlite3`` (WAL mode)."""

    FILENAME = "tidings.sqlite3"
    shared = False  # one server per data directory

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / self.FILENAME
        self._connection: sqlite3.Connection | None = None
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tidings-store")

    @classmethod
    async def open(cls, data_dir: Path, *, create: bool = True) -> SqliteStore:
        """Open the store in ``data_dir``, creating it unless ``create`` is False.

        Raises `DataDirectoryError` when there is no store and ``create`` is False, or the directory or the
        store in it cannot be used (unwritable, not a directory, not a database).
        """
        store = cls(data_dir)
        if not create and not store.path.exists():
            store._worker.shutdown()
            raise DataDirectoryError(data_dir, "no tidings store here (start the server once, or check --data-dir)")
        try:
            await store._run(store._open)
        except BaseException:
            await store.close()
            raise
        return store

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            # The CLI's key commands and the server share the file: wait for each other's writes.
            connection.execute("PRAGMA busy_timeout=5000")
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.executescript(_SCHEMA)
        except BaseException:
            connection.close()
            raise
        self._connection = connection

    def _db(self) -> sqlite3.Connection:
        if self._connection is None:
            raise RuntimeError("the store is closed")
        return self._connection

    async def list_caches(self) -> list[str]:
        rows = await self._query("SELECT name FROM caches ORDER BY name")
        return [str(row[0]) for row in rows]

    async def cache_exists(self, cache_name: str) -> bool:
        return bool(await self._query("SELECT 1 FROM caches WHERE name = ?", (cache_name,)))

    async def caches_version(self) -> int:
        """Always 0: only the server holding the data directory's lock changes its caches, and it knows."""
        return 0

    async def create_cache(self, cache_name: str) -> bool:
        changed = await self._execute(
            "INSERT OR IGNORE INTO caches (name, created_at) VALUES (?, ?)", (cache_name, time.time())
        )
        return changed == 1

    async def delete_cache(self, cache_name: str) -> bool:
        changed = await self._transaction(
            ("DELETE FROM caches WHERE name = ?", (cache_name,)),
            ("DELETE FROM webhooks WHERE cache = ?", (cache_name,)),
        )
        return changed[0] == 1

    async def list_webhooks(self) -> list[Webhook]:
        rows = await self._query("SELECT cache, name, topic, url, secret FROM webhooks ORDER BY cache, name")
        return [Webhook(*(str(column) for column in row)) for row in rows]

    async def put_webhook(self, webhook: Webhook) -> Webhook | None:
        db = self._db()

        def run() -> Webhook | None:
            db.execute("BEGIN IMMEDIATE")
            try:
                row = None
                if db.execute("SELECT 1 FROM caches WHERE name = ?", (webhook.cache_name,)).fetchone() is not None:
                    db.execute(
                        "INSERT INTO webhooks (cache, name, topic, url, secret, created_at) VALUES (?, ?, ?, ?, ?, ?) "
                        "ON CONFLICT(cache, name) DO UPDATE SET topic = excluded.topic, url = excluded.url",
                        (
                            webhook.cache_name,
                            webhook.name,
                            webhook.topic_name,
                            webhook.url,
                            webhook.secret,
                            time.time(),
                        ),
                    )
                    row = db.execute(
                        "SELECT secret FROM webhooks WHERE cache = ? AND name = ?", (webhook.cache_name, webhook.name)
                    ).fetchone()
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            if row is None:
                return None
            return Webhook(webhook.cache_name, webhook.name, webhook.topic_name, webhook.url, str(row[0]))

        return await self._run(run)

    async def set_webhook_secret(self, cache_name: str, name: str, secret: str) -> bool:
        changed = await self._execute(
            "UPDATE webhooks SET secret = ? WHERE cache = ? AND name = ?", (secret, cache_name, name)
        )
        return changed == 1

    async def delete_webhook(self, cache_name: str, name: str) -> bool:
        changed = await self._execute("DELETE FROM webhooks WHERE cache = ? AND name = ?", (cache_name, name))
        return changed == 1

    async def load_page_floor(self) -> int:
        rows = await self._query("SELECT value FROM meta WHERE key = ?", (_PAGE_FLOOR,))
        return int(str(rows[0][0])) if rows else 0

    async def save_page_floor(self, sequence_page: int) -> None:
        await self._execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (_PAGE_FLOOR, str(sequence_page)),
        )

    async def list_api_keys(self) -> list[ApiKey]:
        rows = await self._query(
            "SELECT id, secret_hash, super_user, grants, description, created_at, expires_at, revoked_at "
            "FROM api_keys ORDER BY created_at, id"
        )
        return [
            ApiKey(
                key_id=str(row[0]),
                secret_hash=str(row[1]),
                super_user=bool(row[2]),
                grants=grants_from_json(json.loads(str(row[3]))),
                description=str(row[4]),
                created_at=float(row[5]),  # type: ignore[arg-type]
                expires_at=None if row[6] is None else float(row[6]),  # type: ignore[arg-type]
                revoked_at=None if row[7] is None else float(row[7]),  # type: ignore[arg-type]
            )
            for row in rows
        ]

    async def add_api_key(self, key: ApiKey) -> None:
        await self._transaction(
            (
                "INSERT INTO api_keys (id, secret_hash, super_user, grants, description, created_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    key.key_id,
                    key.secret_hash,
                    int(key.super_user),
                    json.dumps(grants_to_json(key.grants)),
                    key.description,
                    key.created_at,
                    key.expires_at,
                ),
            ),
            (_BUMP_KEYS_VERSION, (_KEYS_VERSION,)),
        )

    async def revoke_api_key(self, key_id: str, at: float) -> bool:
        changed = await self._transaction(
            ("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (at, key_id)),
            (_BUMP_KEYS_VERSION, (_KEYS_VERSION,)),
        )
        return changed[0] == 1

    async def list_revoked_tokens(self) -> dict[str, float]:
        rows = await self._query("SELECT token_id, revoked_at FROM revoked_tokens")
        return {str(row[0]): float(row[1]) for row in rows}  # type: ignore[arg-type]

    async def revoke_token(self, token_id: str, at: float) -> None:
        # A revocation outlives every token it covers by no more than their longest lifetime; then it is dropped.
        await self._transaction(
            ("DELETE FROM revoked_tokens WHERE revoked_at < ?", (at - MAX_TOKEN_LIFETIME,)),
            (
                "INSERT INTO revoked_tokens (token_id, revoked_at) VALUES (?, ?) "
                "ON CONFLICT(token_id) DO UPDATE SET revoked_at = max(revoked_at, excluded.revoked_at)",
                (token_id, at),
            ),
            (_BUMP_KEYS_VERSION, (_KEYS_VERSION,)),
        )

    async def api_keys_version(self) -> int:
        rows = await self._query("SELECT value FROM meta WHERE key = ?", (_KEYS_VERSION,))
        return int(str(rows[0][0])) if rows else 0

    async def close(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            await self._run(connection.close)
        self._worker.shutdown()

    async def _run(self, call: Callable[[], T]) -> T:
        """Run ``call`` on the store's thread; a failing disk or database is a `DataDirectoryError`."""
        try:
            return await asyncio.get_running_loop().run_in_executor(self._worker, call)
        except (OSError, sqlite3.Error) as error:
            raise DataDirectoryError.caused_by(self.path.parent, error, self.FILENAME) from None

    async def _query(self, query: str, parameters: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        db = self._db()
        return await self._run(lambda: db.execute(query, parameters).fetchall())

    async def _execute(self, statement: str, parameters: tuple[object, ...]) -> int:
        db = self._db()
        # Autocommit: each statement is its own transaction.
        return await self._run(lambda: db.execute(statement, parameters).rowcount)

    async def _transaction(self, *statements: tuple[str, tuple[object, ...]]) -> list[int]:
        """Run ``statements`` in one transaction; returns each one's changed row count."""
        db = self._db()

        def run() -> list[int]:
            db.execute("BEGIN IMMEDIATE")
            try:
                counts = [db.execute(statement, parameters).rowcount for statement, parameters in statements]
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            return counts

        return await self._run(run)
