"""Disposable tokens: JWTs (HS256) signed with the server's secret, carrying grants, expiry and a token id."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

import jwt

from tidings.server.auth._grants import ScopeSyntaxError, grants_from_json, grants_to_json
from tidings.server.core import InvalidArgument, Principal, TopicGrant, Unauthenticated

MAX_TOKEN_LIFETIME: Final = 3600
MAX_TOKEN_ID_LENGTH: Final = 64
# Accepted difference between this server's clock and the one that minted a token.
CLOCK_SKEW: Final = 5.0
_ISSUER: Final = "tidings"


class TokenSigner:
    """Mints and verifies disposable tokens with one secret; another server's tokens do not verify."""

    def __init__(self, secret: bytes, wall_clock: Callable[[], float] = time.time) -> None:
        if len(secret) < 32:
            raise ValueError("the signing secret must be at least 32 bytes")
        self._secret = secret
        self._wall_clock = wall_clock

    def mint(self, grants: tuple[TopicGrant, ...], valid_for: int, token_id: str = "") -> tuple[str, int]:
        """A token for ``grants`` valid for ``valid_for`` seconds; returns it and its expiry (epoch seconds)."""
        if not 1 <= valid_for <= MAX_TOKEN_LIFETIME:
            raise InvalidArgument(f"expiry must be 1 to {MAX_TOKEN_LIFETIME} seconds")
        if len(token_id) > MAX_TOKEN_ID_LENGTH:
            raise InvalidArgument(f"token_id must be at most {MAX_TOKEN_ID_LENGTH} characters")
        if not grants:
            raise InvalidArgument("a disposable token needs at least one topic permission")
        now = int(self._wall_clock())
        expires_at = now + valid_for
        claims = {"iss": _ISSUER, "iat": now, "exp": expires_at, "g": grants_to_json(grants)}
        if token_id:
            claims["tid"] = token_id
        return jwt.encode(claims, self._secret, algorithm="HS256"), expires_at

    def verify(self, token: str) -> Principal:
        """The principal of a valid token; `Unauthenticated` for a bad signature, expiry or shape."""
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
        expires_at = claims["exp"]
        if not isinstance(expires_at, int | float):
            raise Unauthenticated("invalid token")
        if expires_at + CLOCK_SKEW <= self._wall_clock():
            raise Unauthenticated("the token expired")
        token_id = claims.get("tid", "")
        if not isinstance(token_id, str):
            raise Unauthenticated("invalid token")
        try:
            grants = grants_from_json(claims["g"])
        except ScopeSyntaxError:
            raise Unauthenticated("invalid token") from None
        return Principal(grants=grants, token_id=token_id, expires_at=float(expires_at) + CLOCK_SKEW)
