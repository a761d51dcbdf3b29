"""From a request's credential to a `Principal`, without I/O on the hot path.

Verified credentials are cached (bounded); API keys and revoked token ids are held in memory and refreshed
from the store when its version changes, so a revoked key, every token it minted, and a revoked token id are
refused by every connection within one refresh interval.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from tidings.server.auth._keys import ApiKey, KeyStore, hash_secret, split_api_key
from tidings.server.auth._tokens import TokenSigner
from tidings.server.core import ANONYMOUS, Principal, Unauthenticated

MAX_CREDENTIAL_LENGTH: Final = 8192
CACHE_SIZE: Final = 10_000


@dataclass(frozen=True, slots=True)
class AuthPolicy:
    """Whether requests without a credential are served (as super-user)."""

    allow_anonymous: bool


def unwrap_envelope(credential: str) -> str:
    """The ``api_key`` inside Momento's base64 ``{"endpoint", "api_key"}`` envelope, else ``credential``."""
    if "." in credential or "_" in credential:  # a JWT or one of our API keys, not base64 JSON
        return credential
    try:
        decoded = json.loads(base64.b64decode(credential + "=" * (-len(credential) % 4), validate=True))
    except (binascii.Error, ValueError, RecursionError):
        return credential
    if isinstance(decoded, dict) and isinstance(decoded.get("api_key"), str) and decoded["api_key"]:
        return str(decoded["api_key"])
    return credential


@dataclass(frozen=True, slots=True)
class Revocations:
    """What a refresh found revoked since the last one: API key ids, and token ids with their revocation time."""

    key_ids: list[str] = field(default_factory=list)
    token_ids: dict[str, float] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.key_ids or self.token_ids)


class Authenticator:
    """Verifies credentials: the admin key from the environment, stored API keys, disposable tokens."""

    def __init__(
        self,
        signer: TokenSigner,
        policy: AuthPolicy,
        *,
        admin_key: str | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.signer = signer
        self.policy = policy
        self._admin_key_hash = hash_secret(admin_key) if admin_key else None
        # Tokens minted with the environment's admin key name it by this id; another admin key refuses them.
        self.admin_key_id = f"env-{signer.fingerprint(admin_key)}" if admin_key else None
        self._wall_clock = wall_clock
        self._keys: dict[str, ApiKey] = {}
        self._revoked_tokens: dict[str, float] = {}
        self._keys_version: int | None = None
        self._verified: dict[str, Principal] = {}

    def authenticate(self, credential: str | None) -> Principal:
        """The principal behind ``credential`` (None or empty: anonymous), or `Unauthenticated`."""
        if not credential:
            if self.policy.allow_anonymous:
                return ANONYMOUS
            raise Unauthenticated("this server requires a token in the authorization header")
        principal = self._verified.get(credential)
        if principal is None:
            principal = self._verify(credential)
            if len(self._verified) >= CACHE_SIZE:
                del self._verified[next(iter(self._verified))]
            self._verified[credential] = principal
        elif principal.expires_at is not None and principal.expires_at <= self._wall_clock():
            del self._verified[credential]
            raise Unauthenticated("the token expired")
        return principal

    def _verify(self, credential: str) -> Principal:
        if len(credential) > MAX_CREDENTIAL_LENGTH:
            raise Unauthenticated("malformed token: too long")
        token = unwrap_envelope(credential)
        if self._admin_key_hash is not None and hmac.compare_digest(self._admin_key_hash, hash_secret(token)):
            return Principal(super_user=True, key_id=self.admin_key_id)
        parts = split_api_key(token)
        if parts is None:
            return self._verify_token(token)
        key = self._keys.get(parts[0])
        if key is None or key.revoked_at is not None or not key.matches(parts[1]):
            raise Unauthenticated("invalid API key")
        if key.expires_at is not None and key.expires_at <= self._wall_clock():
            raise Unauthenticated("the API key expired")
        return key.principal()

    def _verify_token(self, token: str) -> Principal:
        principal = self.signer.verify(token)
        minted_by = principal.key_id
        if minted_by is not None and minted_by != self.admin_key_id:
            key = self._keys.get(minted_by)
            if key is None or key.revoked_at is not None:
                raise Unauthenticated("the API key that minted this token was revoked")
        revoked_at = self._revoked_tokens.get(principal.token_id) if principal.token_id else None
        if revoked_at is not None and principal.issued_at is not None and principal.issued_at <= revoked_at:
            raise Unauthenticated("the token was revoked")
        return principal

    def load_revoked_tokens(self, revoked: dict[str, float]) -> dict[str, float]:
        """Replace the revoked token ids; returns those that are new or now cover later tokens."""
        changed = {
            token_id: at for token_id, at in revoked.items() if self._revoked_tokens.get(token_id, -math.inf) < at
        }
        self._revoked_tokens = dict(revoked)
        if changed:
            self._verified.clear()
        return changed

    def load_keys(self, keys: list[ApiKey]) -> list[str]:
        """Replace the known API keys; returns the ids that were usable and are not any more."""
        usable_before = {key_id for key_id, key in self._keys.items() if key.revoked_at is None}
        self._keys = {key.key_id: key for key in keys}
        gone = sorted(
            key_id for key_id in usable_before if key_id not in self._keys or self._keys[key_id].revoked_at is not None
        )
        if gone:
            self._verified.clear()
        return gone

    async def refresh(self, store: KeyStore) -> Revocations:
        """Reload API keys and revoked tokens if the store's version changed; returns what was revoked since."""
        version = await store.api_keys_version()
        if version == self._keys_version:
            return Revocations()
        keys, revoked_tokens = await store.list_api_keys(), await store.list_revoked_tokens()
        self._keys_version = version
        return Revocations(self.load_keys(keys), self.load_revoked_tokens(revoked_tokens))
