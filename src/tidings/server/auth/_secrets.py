"""The signing secret and the generated admin key: files in the data directory, mode 0600.

Each deployment has one generated admin key, in a file of its own, and no server ever rewrites another
deployment's file: a server with its store in the data directory (SQLite) keeps ``admin.key``; the servers of
one Redis (or Redis Cluster) share one key, kept in ``admin-redis-<deployment id>.key`` where it was generated
(the id is created once in Redis), so a memory server and a Redis node can share a data directory.

``$TIDINGS_ADMIN_KEY`` makes a key of one's own the admin key. A server with a store of its own then accepts no
other: the generated key is revoked. A Redis node accepts it besides the deployment's generated key, which the
other nodes may be using: that key is revoked only when asked (``tidings key revoke``).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Protocol, TypeGuard

from tidings.server.auth._keys import ApiKey, KeyStore, new_api_key, split_api_key

logger = logging.getLogger("tidings.server")

SECRET_FILE: Final = "secret.key"
ADMIN_KEY_FILE: Final = "admin.key"
SECRET_ENV: Final = "TIDINGS_SECRET_KEY"
ADMIN_KEY_ENV: Final = "TIDINGS_ADMIN_KEY"
# Generated admin keys' ids start with this; other keys' ids are hex, so they never do.
ADMIN_KEY_ID_PREFIX: Final = "admin"


@dataclass(frozen=True)
class AdminKey:
    """Which admin (super-user) key a server accepts, as `load_or_create_admin_key` settled it.

    ``path`` is the file of the generated key when this server has it; ``configured`` is ``$TIDINGS_ADMIN_KEY``
    when set, and ``exclusive`` says no other admin key is valid then. With neither, the key is the Redis
    deployment's generated one, whose file another server wrote (logged, with where).
    """

    path: Path | None = None
    configured: str | None = field(default=None, repr=False)
    exclusive: bool = False


class SharedKeyStore(KeyStore, Protocol):
    """A key store several servers share (Redis): they share one generated admin key."""

    async def deployment_id(self) -> str:
        """A short id of the deployment (the servers sharing this store), made once by the first to ask."""
        ...

    async def claim_admin_key(self, key: ApiKey) -> str:
        """Make ``key`` the deployment's generated admin key and store it, unless the deployment has a usable
        one; returns the id of the deployment's admin key (``key.key_id`` if it was claimed)."""
        ...


def _is_shared(store: KeyStore) -> TypeGuard[SharedKeyStore]:
    """Whether several servers share ``store`` (as its ``shared`` says), and with it one generated admin key."""
    return store.shared


def shared_admin_key_file(deployment_id: str) -> str:
    """The name of the admin key file of the Redis deployment ``deployment_id``, in a data directory."""
    return f"admin-redis-{deployment_id}.key"


def _write_private(path: Path, text: str) -> None:
    """Create ``path`` readable by its owner only; never overwrite."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text + "\n")


def load_or_create_secret(data_dir: Path, environ: Mapping[str, str] = os.environ) -> bytes:
    """The token signing secret: ``$TIDINGS_SECRET_KEY``, else ``<data_dir>/secret.key`` (created on first use)."""
    configured = environ.get(SECRET_ENV)
    if configured:
        if len(configured.encode()) < 32:
            raise ValueError(f"{SECRET_ENV} must be at least 32 bytes")
        return configured.encode()
    path = data_dir / SECRET_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        _write_private(path, secrets.token_hex(32))
    secret = path.read_text().strip()
    if len(secret) < 32:
        raise ValueError(f"{path} holds no usable secret (at least 32 characters)")
    return secret.encode()


async def load_or_create_admin_key(
    data_dir: Path, store: KeyStore, environ: Mapping[str, str] = os.environ
) -> AdminKey:
    """Make sure exactly one admin (super-user) key is valid, and say which.

    With ``$TIDINGS_ADMIN_KEY`` set (at least 32 characters) that key is the admin key: a generated one is
    revoked and ``<data_dir>/admin.key`` removed. Otherwise a key is generated when ``<data_dir>/admin.key`` is
    missing or holds a key that is no longer usable (revoked, expired, unknown to the store): its hash is
    stored, the key written to the file (mode 0600), and any other generated admin key revoked.

    A store several servers share (Redis) has one admin key for all of them instead, in a file of its own: see
    `_load_or_claim_shared_admin_key`.
    """
    configured = _configured_admin_key(environ)
    if _is_shared(store):
        return await _load_or_claim_shared_admin_key(data_dir, store, configured)
    path = data_dir / ADMIN_KEY_FILE
    if configured is not None:
        await _retire_generated_admin_key(path, store)
        return AdminKey(configured=configured, exclusive=True)
    existed = path.exists()
    current = _read_key(path)
    if current is not None and await _is_usable(current, store):
        await _revoke_admin_keys(store, keep=current[0])
        return AdminKey(path)
    key_id, key, secret_hash = new_api_key(f"{ADMIN_KEY_ID_PREFIX}{secrets.token_hex(3)}")
    await store.add_api_key(
        ApiKey(key_id, secret_hash, super_user=True, grants=(), description="admin key", created_at=time.time())
    )
    _replace_private(path, key)
    await _revoke_admin_keys(store, keep=key_id)
    if existed:
        logger.warning("the admin key in %s was revoked or unknown; a new one was written there", path)
    return AdminKey(path)


async def _load_or_claim_shared_admin_key(data_dir: Path, store: SharedKeyStore, configured: str | None) -> AdminKey:
    """The admin key of servers sharing a store: one for the whole deployment, and never another file's.

    The key in ``<data_dir>/admin-redis-<id>.key`` is kept while it is usable. Otherwise a new key is claimed
    for the deployment, unless it has a usable one already, and written to that file; no other generated admin
    key is revoked, so no server undoes another's. With ``configured`` ($TIDINGS_ADMIN_KEY) nothing is
    generated, and nothing revoked or removed either: other nodes may use the deployment's key and its file.
    """
    path = data_dir / shared_admin_key_file(await store.deployment_id())
    if configured is not None:
        await _log_the_generated_key_stays(store)
        return AdminKey(configured=configured)
    current = _read_key(path)
    if current is not None and await _is_usable(current, store):
        return AdminKey(path)
    key_id, key, secret_hash = new_api_key(f"{ADMIN_KEY_ID_PREFIX}{secrets.token_hex(3)}")
    description = f"admin key, in {socket.gethostname()}:{path}"
    record = ApiKey(key_id, secret_hash, super_user=True, grants=(), description=description, created_at=time.time())
    holder = await store.claim_admin_key(record)
    if holder == key_id:
        _replace_private(path, key)
        if current is not None:
            logger.warning("the admin key in %s was revoked or unknown; a new one was written there", path)
        return AdminKey(path)
    # Another server generated it; one sharing this data directory may just have written it here.
    written = _read_key(path)
    if written is not None and written[0] == holder and await _is_usable(written, store):
        return AdminKey(path)
    where = next((record.description for record in await store.list_api_keys() if record.key_id == holder), "")
    logger.info(
        "admin key (super-user): this Redis deployment's is %s, generated by another server (%s); copy that file "
        "to %s to have it here, or set %s",
        holder,
        where.removeprefix("admin key, ") or "unknown place",
        path,
        ADMIN_KEY_ENV,
    )
    return AdminKey()


def _configured_admin_key(environ: Mapping[str, str]) -> str | None:
    """``$TIDINGS_ADMIN_KEY``, checked to be at least 32 characters; None when unset."""
    configured = environ.get(ADMIN_KEY_ENV)
    if not configured:
        return None
    if len(configured) < 32:
        raise ValueError(f"{ADMIN_KEY_ENV} must be at least 32 characters")
    return configured


async def _log_the_generated_key_stays(store: KeyStore) -> None:
    """A Redis node with ``$TIDINGS_ADMIN_KEY``: say that the deployment's generated key, if usable, is valid too."""
    generated = [
        record.key_id
        for record in await store.list_api_keys()
        if record.key_id.startswith(ADMIN_KEY_ID_PREFIX) and record.revoked_at is None
    ]
    if generated:
        logger.info(
            "%s is an admin key of this node; the deployment's generated admin key %s stays valid on every node "
            "(revoke it with `tidings key revoke %s` once every node has %s)",
            ADMIN_KEY_ENV,
            generated[0],
            generated[0],
            ADMIN_KEY_ENV,
        )


async def _retire_generated_admin_key(path: Path, store: KeyStore) -> None:
    """``$TIDINGS_ADMIN_KEY`` is the only admin key of a server with a store of its own: revoke the generated
    ones and remove their file ``path``."""
    retired = await _revoke_admin_keys(store, keep=None)
    if _remove(path):
        logger.warning(
            "%s is the admin key: the generated one in %s no longer works, the file is removed", ADMIN_KEY_ENV, path
        )
    elif retired:
        logger.warning("%s is the admin key: the generated one (%s) no longer works", ADMIN_KEY_ENV, retired[0])


def _remove(path: Path) -> bool:
    """Remove the file ``path``; False if there was none."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def _read_key(path: Path) -> tuple[str, str] | None:
    """(key id, secret) of the key in ``path``; None if there is no such file or it holds no key."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    return split_api_key(text.strip())


def _replace_private(path: Path, key: str) -> None:
    """Write ``key`` to ``path`` (mode 0600) in one step: to a file of this process's, renamed over it."""
    pending = path.with_name(f"{path.name}.{os.getpid()}.new")
    pending.unlink(missing_ok=True)
    _write_private(pending, key)
    pending.replace(path)


async def _revoke_admin_keys(store: KeyStore, keep: str | None) -> list[str]:
    """Revoke every generated admin key but ``keep``; returns the ids revoked."""
    revoked = []
    for record in await store.list_api_keys():
        if record.key_id.startswith(ADMIN_KEY_ID_PREFIX) and record.key_id != keep and record.revoked_at is None:
            await store.revoke_api_key(record.key_id, time.time())
            revoked.append(record.key_id)
    return revoked


async def _is_usable(key: tuple[str, str], store: KeyStore) -> bool:
    key_id, secret = key
    for record in await store.list_api_keys():
        if record.key_id == key_id:
            expired = record.expires_at is not None and record.expires_at <= time.time()
            return record.revoked_at is None and not expired and record.matches(secret)
    return False
