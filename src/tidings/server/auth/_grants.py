"""Grants as compact JSON (in API key records and token claims) and as command-line scopes."""

from __future__ import annotations

from typing import Any, Final

from tidings.server.core import TopicGrant, TopicPermission

_ROLE_CODES: Final = {TopicPermission.READ_WRITE: "rw", TopicPermission.READ_ONLY: "r", TopicPermission.WRITE_ONLY: "w"}
_ROLES_BY_CODE: Final = {code: role for role, code in _ROLE_CODES.items()}
_ROLE_NAMES: Final = {
    "readwrite": TopicPermission.READ_WRITE,
    "publish-subscribe": TopicPermission.READ_WRITE,
    "rw": TopicPermission.READ_WRITE,
    "readonly": TopicPermission.READ_ONLY,
    "subscribe-only": TopicPermission.READ_ONLY,
    "ro": TopicPermission.READ_ONLY,
    "writeonly": TopicPermission.WRITE_ONLY,
    "publish-only": TopicPermission.WRITE_ONLY,
    "wo": TopicPermission.WRITE_ONLY,
}


class ScopeSyntaxError(ValueError):
    """A scope string or grant JSON is malformed."""


def grants_to_json(grants: tuple[TopicGrant, ...]) -> list[dict[str, Any]]:
    """Grants as JSON-ready dicts: ``{"r": "rw"|"r"|"w", "c": cache|None, "t": topic|None, "p": prefix|None}``."""
    return [{"r": _ROLE_CODES[g.role], "c": g.cache_name, "t": g.topic_name, "p": g.topic_prefix} for g in grants]


def grants_from_json(data: object) -> tuple[TopicGrant, ...]:
    """The inverse of `grants_to_json`; raises `ScopeSyntaxError` on anything else."""
    if not isinstance(data, list):
        raise ScopeSyntaxError("grants must be a list")
    grants: list[TopicGrant] = []
    for item in data:
        if not isinstance(item, dict) or not isinstance(item.get("r"), str) or item["r"] not in _ROLES_BY_CODE:
            raise ScopeSyntaxError("malformed grant")
        fields = [item.get(key) for key in ("c", "t", "p")]
        if not all(value is None or isinstance(value, str) for value in fields):
            raise ScopeSyntaxError("malformed grant")
        try:
            grants.append(TopicGrant(_ROLES_BY_CODE[item["r"]], *fields))
        except ValueError as error:
            raise ScopeSyntaxError(str(error)) from None
    return tuple(grants)


def parse_scope(text: str) -> TopicGrant:
    """A grant from ``ROLE:CACHE[:TOPIC]``.

    ROLE is readwrite / readonly / writeonly (or publish-subscribe / subscribe-only / publish-only, rw / ro /
    wo); CACHE a name or ``*``; TOPIC a name, a ``prefix*`` or ``*`` (the default).
    """
    role_name, _, rest = text.partition(":")
    role = _ROLE_NAMES.get(role_name.strip().lower())
    if role is None or not rest:
        raise ScopeSyntaxError(
            f"{text!r} is not a scope: use ROLE:CACHE[:TOPIC], ROLE one of readwrite, readonly, writeonly"
        )
    cache, _, topic = rest.partition(":")
    if not cache:
        raise ScopeSyntaxError(f"{text!r} names no cache (use * for every cache)")
    cache_name = None if cache == "*" else cache
    if topic in ("", "*"):
        return TopicGrant(role, cache_name)
    if topic.endswith("*"):
        return TopicGrant(role, cache_name, topic_prefix=topic[:-1])
    return TopicGrant(role, cache_name, topic_name=topic)


def describe_grant(grant: TopicGrant) -> str:
    """A grant in the scope syntax `parse_scope` reads."""
    role = {
        TopicPermission.READ_WRITE: "readwrite",
        TopicPermission.READ_ONLY: "readonly",
        TopicPermission.WRITE_ONLY: "writeonly",
    }
    topic = grant.topic_name if grant.topic_name is not None else f"{grant.topic_prefix or ''}*"
    return f"{role[grant.role]}:{grant.cache_name or '*'}:{topic}"
