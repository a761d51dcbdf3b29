"""Response objects of the topic, cache and auth clients: frozen dataclasses in namespace classes, for ``match``.

Each call returns one of its namespace's classes, never raises for a failure::

    match await client.publish("cache", "topic", "hello"):
        case TopicPublish.Success():
            ...
        case TopicPublish.Error(error_code=code, message=message):
            ...
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeAlias

from tidings.client._errors import ErrorResponse
from tidings.client._subscription import SubscriptionAsync
from tidings.client._subscription_sync import Subscription


class TopicPublish:
    """Responses of ``publish``."""

    @dataclass(frozen=True, slots=True)
    class Success:
        """The server accepted the value (it is in the topic's retention buffer and on its way to subscribers)."""

    @dataclass(frozen=True, slots=True)
    class Error(ErrorResponse):
        """The value was not published."""


class TopicSubscribe:
    """Responses of ``subscribe``: a live subscription, or why there is none."""

    Subscription: TypeAlias = Subscription
    """A live subscription of `TopicClient` (an iterator)."""
    SubscriptionAsync: TypeAlias = SubscriptionAsync
    """A live subscription of `TopicClientAsync` (an async iterator)."""

    @dataclass(frozen=True, slots=True)
    class Error(ErrorResponse):
        """The subscription could not start (nothing to unsubscribe)."""


@dataclass(frozen=True, slots=True)
class TopicLimits:
    """The topic limits a server applies in a cache (0 where it has none)."""

    max_publish_rate: int
    """Publishes per second per cache."""
    max_subscription_count: int
    """Open subscriptions per cache."""
    max_publish_message_size_kb: int
    """Largest value, in KiB."""


@dataclass(frozen=True, slots=True)
class CacheInfo:
    """A cache as ``list_caches`` reports it."""

    name: str
    topic_limits: TopicLimits | None = None


class CreateCache:
    """Responses of ``create_cache``."""

    @dataclass(frozen=True, slots=True)
    class Success:
        """The cache was created."""

    @dataclass(frozen=True, slots=True)
    class CacheAlreadyExists:
        """A cache with that name already exists (nothing changed)."""

    @dataclass(frozen=True, slots=True)
    class Error(ErrorResponse):
        """The cache was not created."""


class DeleteCache:
    """Responses of ``delete_cache``."""

    @dataclass(frozen=True, slots=True)
    class Success:
        """The cache was deleted; its subscriptions ended with ``CACHE_NOT_FOUND``."""

    @dataclass(frozen=True, slots=True)
    class Error(ErrorResponse):
        """The cache was not deleted (``CACHE_NOT_FOUND`` if there was none)."""


class ListCaches:
    """Responses of ``list_caches``."""

    @dataclass(frozen=True, slots=True)
    class Success:
        """Every cache, sorted by name."""

        caches: tuple[CacheInfo, ...]

        @property
        def cache_names(self) -> list[str]:
            """The names of `caches`."""
            return [cache.name for cache in self.caches]

    @dataclass(frozen=True, slots=True)
    class Error(ErrorResponse):
        """The caches could not be listed."""


class GenerateDisposableToken:
    """Responses of ``generate_disposable_token``."""

    @dataclass(frozen=True, slots=True)
    class Success:
        """A minted token: pass ``token`` as a client's ``api_key`` until ``expires_at``.

        ``endpoint`` is where the server says clients reach it; ``token_id`` is the id subscribers see on
        what the token publishes (None without one). `momento_token` is the same token as the official
        Momento SDKs hand it out; tidings servers accept either.
        """

        token: str = field(repr=False)
        endpoint: str
        expires_at: datetime
        token_id: str | None = None

        @property
        def momento_token(self) -> str:
            """Momento's base64 ``{"endpoint", "api_key"}`` envelope of `token`, for official SDK clients."""
            envelope = json.dumps({"endpoint": self.endpoint, "api_key": self.token})
            return base64.b64encode(envelope.encode("utf-8")).decode("ascii")

    @dataclass(frozen=True, slots=True)
    class Error(ErrorResponse):
        """No token was minted (``PERMISSION_DENIED`` unless the caller is a super-user)."""
