"""Validation of cache and topic names (PROTOCOL.md *Caches and topics*)."""

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
    # A character is at most 4 UTF-8 bytes: only long names need encoding to measure.
    if len(value) * 4 > MAX_NAME_BYTES and len(value.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise InvalidArgument(f"{field} must be at most {MAX_NAME_BYTES} bytes of UTF-8")
    if _CONTROL_CHARACTER.search(value):
        raise InvalidArgument(f"{field} must not contain control characters")
    return value
