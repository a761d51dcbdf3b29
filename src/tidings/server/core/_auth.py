"""Who is calling and what they may do (README *Authentication and tokens*).

A `Principal` is the verified identity behind a request: super-user, or a set of topic grants. How a
credential becomes a principal (API keys, signed disposable tokens) lives in ``tidings.server.auth``; the core
only asks `Principal.may` before it publishes, subscribes or manages caches.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final


class TopicPermission(enum.Flag):
    """What a grant allows on the topics it selects."""

    PUBLISH = enum.auto()
    SUBSCRIBE = enum.auto()
    READ_WRITE = PUBLISH | SUBSCRIBE
    READ_ONLY = SUBSCRIBE
    WRITE_ONLY = PUBLISH


@dataclass(frozen=True, slots=True)
class TopicGrant:
    """``role`` on the topics of ``cache_name`` (None: every cache) named ``topic_name`` or starting with
    ``topic_prefix`` (both None: every topic)."""

    role: TopicPermission
    cache_name: str | None = None
    topic_name: str | None = None
    topic_prefix: str | None = None

    def __post_init__(self) -> None:
        if self.topic_name is not None and self.topic_prefix is not None:
            raise ValueError("a grant selects topics by name or by prefix, not both")

    def covers(self, action: TopicPermission, cache_name: str, topic_name: str) -> bool:
        """Whether this grant allows ``action`` on the topic."""
        if action not in self.role:
            return False
        if self.cache_name is not None and self.cache_name != cache_name:
            return False
        if self.topic_name is not None:
            return self.topic_name == topic_name
        if self.topic_prefix is not None:
            return topic_name.startswith(self.topic_prefix)
        return True


@dataclass(frozen=True, slots=True)
class Principal:
    """A verified caller.

    ``token_id`` is stamped on the messages it publishes; ``key_id`` names the API key behind it, for a
    disposable token the key that minted it (revoking that key ends its subscriptions); ``expires_at`` (epoch
    seconds) ends its subscriptions when reached; ``issued_at`` (epoch seconds) is when a disposable token was
    minted (revoking its token id ends the subscriptions of tokens minted until then).
    """

    super_user: bool = False
    grants: tuple[TopicGrant, ...] = ()
    token_id: str = ""
    key_id: str | None = None
    expires_at: float | None = None
    issued_at: float | None = None

    def may(self, action: TopicPermission, cache_name: str, topic_name: str) -> bool:
        """Whether this caller may ``action`` (PUBLISH or SUBSCRIBE) on the topic."""
        if self.super_user:
            return True
        return any(grant.covers(action, cache_name, topic_name) for grant in self.grants)

    @property
    def is_revocable(self) -> bool:
        """Whether anything (expiry, key revocation) can end this principal's subscriptions."""
        return self.key_id is not None or self.expires_at is not None


ANONYMOUS: Final = Principal(super_user=True)
"""An anonymous caller on a server that allows anonymous access: super-user, never expires."""
