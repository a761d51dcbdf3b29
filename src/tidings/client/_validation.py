"""Client-side checks of arguments, so a bad call fails at once with INVALID_ARGUMENT and no network call.

The rules are the protocol's (docs/sdk.md *Errors are values*, README *Authentication and tokens*): names
are 1 to 255 bytes of UTF-8 without control characters; a published value is a non-empty ``str`` or
``bytes``; a disposable token lives 1 second to 1 hour and its token id is at most 64 characters.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Final

MAX_NAME_BYTES: Final = 255
MAX_SEQUENCE: Final = 2**64 - 1
MAX_TOKEN_LIFETIME: Final = timedelta(hours=1)
MAX_TOKEN_ID_LENGTH: Final = 64
# C0 controls, DEL and C1 controls: what the server refuses too.
_CONTROL_CHARACTER: Final = re.compile("[\x00-\x1f\x7f-\x9f]")


def name_problem(field: str, name: object) -> str | None:
    """Why ``name`` is not a valid cache or topic name (the message names ``field``), or None if it is."""
    if not isinstance(name, str):
        return f"{field} must be a str, not {type(name).__name__}"
    if not name:
        return f"{field} must not be empty"
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        return f"{field} must be valid UTF-8"
    if size > MAX_NAME_BYTES:
        return f"{field} must be at most {MAX_NAME_BYTES} bytes of UTF-8, not {size}"
    if _CONTROL_CHARACTER.search(name):
        return f"{field} must not contain control characters"
    return None


def value_problem(value: object) -> str | None:
    """Why ``value`` cannot be published, or None if it can (a non-empty ``str`` or ``bytes``)."""
    if not isinstance(value, str | bytes):
        return f"value must be str or bytes, not {type(value).__name__}"
    if not value:
        return "value must not be empty"
    return None


def sequence_problem(field: str, number: object) -> str | None:
    """Why ``number`` is not a valid sequence number or page (an int from 0 to 2**64 - 1), or None."""
    if not isinstance(number, int) or isinstance(number, bool):
        return f"{field} must be an int, not {type(number).__name__}"
    if not 0 <= number <= MAX_SEQUENCE:
        return f"{field} must be between 0 and 2**64 - 1"
    return None


def lifetime_problem(expires_in: object) -> str | None:
    """Why ``expires_in`` is not a disposable token's lifetime (whole seconds, as an int or a timedelta, from
    1 second to 1 hour), or None."""
    if isinstance(expires_in, timedelta):
        seconds = expires_in.total_seconds()
    elif isinstance(expires_in, int) and not isinstance(expires_in, bool):
        seconds = expires_in
    else:
        return f"expires_in must be an int (seconds) or a timedelta, not {type(expires_in).__name__}"
    if not 1 <= seconds <= MAX_TOKEN_LIFETIME.total_seconds():
        return f"expires_in must be 1 second to 1 hour, not {seconds:g} seconds"
    if seconds != int(seconds):
        return f"expires_in must be whole seconds, not {seconds:g}"
    return None


def token_id_problem(token_id: object) -> str | None:
    """Why ``token_id`` cannot name a disposable token (None, or 1 to 64 characters), or None if it can."""
    if token_id is None:
        return None
    if not isinstance(token_id, str):
        return f"token_id must be a str or None, not {type(token_id).__name__}"
    if not token_id:
        return "token_id must not be empty (None for no token id)"
    if len(token_id) > MAX_TOKEN_ID_LENGTH:
        return f"token_id must be at most {MAX_TOKEN_ID_LENGTH} characters, not {len(token_id)}"
    return None
