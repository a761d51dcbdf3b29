"""The signing secret and the generated admin key: files in the data directory, mode 0600."""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from tidings.server.auth._keys import ApiKey, KeyStore, new_api_key, split_api_key

logger = logging.getLogger("tidings.server")

SECRET_FILE: Final = "secret.key"
ADMIN_KEY_FILE: Final = "admin.key"
SECRET_ENV: Final = "TIDINGS_SECRET_KEY"
ADMIN_KEY_ENV: Final = "TIDINGS_ADMIN_KEY"
# Generated admin keys' ids start with this; other keys' ids are hex, so they never do.
ADMIN_KEY_ID_PREFIX: Final = "admin"


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
) -> Path | None:
    """Make sure exactly one admin (super-user) key is valid.

    With ``$TIDINGS_ADMIN_KEY`` set (at least 32 characters) that key is the admin key: a generated one is
    revoked and ``<data_dir>/admin.key`` removed. Otherwise a key is generated when ``<data_dir>/admin.key`` is
    missing or holds a key that is no longer usable (revoked, expired, unknown to the store): its hash is
    stored, the key written to the file (mode 0600), and any other generated admin key revoked. Returns that
    path, or None when the environment provides the key.
    """
    path = data_dir / ADMIN_KEY_FILE
    configured = environ.get(ADMIN_KEY_ENV)
    if configured:
        if len(configured) < 32:
            raise ValueError(f"{ADMIN_KEY_ENV} must be at least 32 characters")
        retired = await _revoke_admin_keys(store, keep=None)
        if path.exists():
            path.unlink()
            logger.warning(
                "%s is the admin key: the generated one in %s no longer works, the file is removed", ADMIN_KEY_ENV, path
            )
        elif retired:
            logger.warning("%s is the admin key: the generated one (%s) no longer works", ADMIN_KEY_ENV, retired[0])
        return None
    existed = path.exists()
    current = split_api_key(path.read_text().strip()) if existed else None
    if current is not None and await _is_usable(current, store):
        await _revoke_admin_keys(store, keep=current[0])
        return path
    key_id, key, secret_hash = new_api_key(f"{ADMIN_KEY_ID_PREFIX}{secrets.token_hex(3)}")
    await store.add_api_key(
        ApiKey(key_id, secret_hash, super_user=True, grants=(), description="admin key", created_at=time.time())
    )
    pending = path.with_name(ADMIN_KEY_FILE + ".new")
    pending.unlink(missing_ok=True)
    _write_private(pending, key)
    pending.replace(path)
    await _revoke_admin_keys(store, keep=key_id)
    if existed:
        logger.warning("the admin key in %s was revoked or unknown; a new one was written there", path)
    return path


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
