"""Disposable tokens: JWTs (HS256) signed with the server's secret, carrying grants, expiry, a token id and the
API key that minted them.

A token works until exactly the ``valid_until`` its minting answer named (the ``exp`` claim, whole epoch
seconds, rounded up so that it lasts at least the lifetime asked for) and not a moment longer: there is no
clock-skew allowance on verification. Servers that share a signing secret must keep their clocks in step (NTP).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections.abc import Callable
from typing import Final

import jwt

from tidings.server.auth._grants import ScopeSyntaxError, grants_from_json, grants_to_json
from tidings.server.core import InvalidArgument, Principal, TopicGrant, Unauthenticated

MAX_TOKEN_LIFETIME: Final = 3600
MAX_TOKEN_ID_LENGTH: Final = 64
_ISSUER: Final = "tidings"


class TokenSigner:
    """Mints and verifies disposable tokens with one secret; another server's tokens do not verify."""

    def __init__(self, secret: bytes, wall_clock: Callable[[], float] = time.time) -> None:
        if len(secret) < 32:
            raise ValueError("the signing secret must be at least 32 bytes")
        self._secret = secret
        self._wall_clock = wall_clock

    def mint(
        self, grants: tuple[TopicGrant, ...], valid_for: int, token_id: str = "", minted_by: str | None = None
    ) -> tuple[str, int]:
        """A token for ``grants`` valid for at least ``valid_for`` seconds; returns it and its expiry (epoch
        seconds, the moment it stops working). ``minted_by`` is the id of the caller's API key: revoking that
        key revokes the token."""
        if not 1 <= valid_for <= MAX_TOKEN_LIFETIME:
            raise InvalidArgument(f"expiry must be 1 to {MAX_TOKEN_LIFETIME} seconds")
        if len(token_id) > MAX_TOKEN_ID_LENGTH:
            raise InvalidArgument(f"token_id must be at most {MAX_TOKEN_ID_LENGTH} characters")
        if not grants:
            raise InvalidArgument("a disposable token needs at least one topic permission")
        now = self._wall_clock()
        # Rounded up: a "3 s" token minted at x.9 must not stop at x+3.
        expires_at = math.ceil(now + valid_for)
        claims: dict[str, object] = {"iss": _ISSUER, "iat": round(now, 6), "exp": expires_at}
        claims["g"] = grants_to_json(grants)
        if token_id:
            claims["tid"] = token_id
        if minted_by is not None:
            claims["k"] = minted_by
        return jwt.encode(claims, self._secret, algorithm="HS256"), expires_at

    def verify(self, token: str) -> Principal:
        """The principal of a valid token; `Unauthenticated` for a bad signature, expiry or shape.

        The principal's ``key_id`` is the key that minted the token (None if none did): the caller checks that
        it is still usable.
        """
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                issuer=_ISSUER,
                # Expiry is checked below against this signer's clock (PyJWT would read the system's).
                options={"require": ["exp", "iat", "iss", "g"], "verify_exp": False, "verify_iat": False},
            )
        except jwt.PyJWTError:
            raise Unauthenticated("invalid token") from None
        expires_at, issued_at = claims["exp"], claims["iat"]
        if not isinstance(expires_at, int | float) or not isinstance(issued_at, int | float):
            raise Unauthenticated("invalid token")
        if expires_at <= self._wall_clock():
            raise Unauthenticated("the token expired")
        token_id = claims.get("tid", "")
        minted_by = claims.get("k")
        if not isinstance(token_id, str) or not (minted_by is None or isinstance(minted_by, str)):
            raise Unauthenticated("invalid token")
        try:
            grants = grants_from_json(claims["g"])
        except ScopeSyntaxError:
            raise Unauthenticated("invalid token") from None
        return Principal(
            grants=grants,
            token_id=token_id,
            key_id=minted_by,
            expires_at=float(expires_at),
            issued_at=float(issued_at),
        )

    def fingerprint(self, credential: str) -> str:
        """A short id for ``credential`` (HMAC with the secret: it reveals nothing of the credential)."""
        return hmac.new(self._secret, credential.encode(), hashlib.sha256).hexdigest()[:16]
