"""API keys: ``tdk_<id>_<secret>``, stored as the secret's SHA-256 (the secret is 256 random bits, so a
fast hash is enough), never in plain text."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Final, Protocol

from tidings.server.core import Principal, TopicGrant

PREFIX: Final = "tdk_"


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored API key (without its secret)."""

    key_id: str
    secret_hash: str
    super_user: bool
    grants: tuple[TopicGrant, ...]
    description: str = ""
    created_at: float = 0.0
    expires_at: float | None = None
    revoked_at: float | None = None

    def matches(self, secret: str) -> bool:
        """Whether ``secret`` is this key's secret (constant time)."""
        return hmac.compare_digest(self.secret_hash, hash_secret(secret))

    def principal(self) -> Principal:
        """What a request made with this key may do."""
        return Principal(super_user=self.super_user, grants=self.grants, key_id=self.key_id, expires_at=self.expires_at)


def hash_secret(secret: str) -> str:
    """The stored form of a key secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_api_key(key_id: str | None = None) -> tuple[str, str, str]:
    """A fresh key: (key id, the full key to hand out once, the hash to store)."""
    key_id = key_id or secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return key_id, f"{PREFIX}{key_id}_{secret}", hash_secret(secret)


def split_api_key(key: str) -> tuple[str, str] | None:
    """(key id, secret) of something shaped like an API key, else None."""
    if not key.startswith(PREFIX):
        return None
    key_id, sep, secret = key[len(PREFIX) :].partition("_")
    if not sep or not key_id or not secret:
        return None
    return key_id, secret


class KeyStore(Protocol):
    """Where API keys are kept (the SQLite store implements it)."""

    @property
    def shared(self) -> bool:
        """Whether several servers share the store (Redis), and with it one generated admin key."""
        ...

    async def list_api_keys(self) -> list[ApiKey]:
        """Every key, revoked ones included."""
        ...

    async def add_api_key(self, key: ApiKey) -> None:
        """Store a new key."""
        ...

    async def revoke_api_key(self, key_id: str, at: float) -> bool:
        """Mark a key revoked; False if there is no such (unrevoked) key."""
        ...

    async def list_revoked_tokens(self) -> dict[str, float]:
        """Revoked disposable token ids, each with when it was revoked (tokens minted until then are refused)."""
        ...

    async def revoke_token(self, token_id: str, at: float) -> None:
        """Refuse the disposable tokens with id ``token_id`` minted until ``at``."""
        ...

    async def api_keys_version(self) -> int:
        """A number that changes whenever a key is added or revoked, or a token revoked (by any process)."""
        ...
