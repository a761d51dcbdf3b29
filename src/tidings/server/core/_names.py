"""Validation of cache and topic names (the protocol's rules: README *Errors clients see*, docs/sdk.md)."""

from __future__ import annotations

import re

from tidings.server.core._errors import InvalidArgument

MAX_NAME_BYTES = 255
# C0 controls, DEL and C1 controls.
_CONTROL_CHARACTER = re.compile("[\x00-\x1f\x7f-\x9f]")


def validate_name(field: str, value: str) -> str:
    """Return ``value`` if it is a valid cache or topic name, else raise `InvalidArgument` naming ``field``."""
    if not value:
        raise InvalidArgument(f"{field} must not be empty")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:  # lone surrogates
        raise InvalidArgument(f"{field} must be UTF-8") from None
    if size > MAX_NAME_BYTES:
        raise InvalidArgument(f"{field} must be at most {MAX_NAME_BYTES} bytes of UTF-8")
    if _CONTROL_CHARACTER.search(value):
        raise InvalidArgument(f"{field} must not contain control characters")
    return value
