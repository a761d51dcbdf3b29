"""The one reading of an ``authorization`` value, shared by gRPC metadata and the HTTP header."""

from __future__ import annotations

_BEARER = "bearer "


def credential_from_header(value: str) -> str | None:
    """The token in an ``authorization`` value: the value itself or ``Bearer <token>`` (scheme in any case).

    Surrounding whitespace is ignored; an empty value (or ``Bearer`` alone) is None, which means anonymous.
    """
    token = value.strip()
    if token[: len(_BEARER)].lower() == _BEARER:
        token = token[len(_BEARER) :].strip()
    elif token.lower() == _BEARER.strip():
        token = ""
    return token or None
