"""The signing secret and the generated admin key: files in the data directory, mode 0600."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from tidings.server.auth._keys import ApiKey, KeyStore, new_api_key

SECRET_FILE: Final = "secret.key"
ADMIN_KEY_FILE: Final = "admin.key"
SECRET_ENV: Final = "TIDINGS_SECRET_KEY"
ADMIN_KEY_ENV: Final = "TIDINGS_ADMIN_KEY"


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
    """Make sure an admin (super-user) key exists.

    With ``$TIDINGS_ADMIN_KEY`` set nothing is created (that key is accepted as given). Otherwise, on first
    start, a key is generated, its hash stored and the key written to ``<data_dir>/admin.key`` (mode 0600);
    returns that path (None when the environment provides the key).
    """
    if environ.get(ADMIN_KEY_ENV):
        return None
    path = data_dir / ADMIN_KEY_FILE
    if not path.exists():
        key_id, key, secret_hash = new_api_key(f"admin{secrets.token_hex(3)}")
        await store.add_api_key(
            ApiKey(key_id, secret_hash, super_user=True, grants=(), description="admin key", created_at=time.time())
        )
        _write_private(path, key)
    return path
