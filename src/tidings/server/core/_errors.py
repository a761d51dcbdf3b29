"""Domain errors of the topics core.

Every failure the core reports to a transport is one of these; each transport maps them to its own status
codes in exactly one function (for gRPC, ``tidings.server.grpc._status.status_of``)::

    TopicsError
    ├── InvalidArgument      bad name, publish without value, malformed request
    ├── CacheNotFound        the cache does not exist (or was deleted while subscribed)
    ├── WebhookNotFound      the cache has no webhook of that name
    ├── CacheAlreadyExists   create of a cache that exists
    ├── LimitExceeded        a configured limit; ``limit`` says which (its value is the ``err`` code)
    ├── Unauthenticated      token missing, malformed, badly signed, expired or revoked
    ├── PermissionDenied     valid token without the needed role
    └── Unavailable          the server is shutting down; a backing service is unreachable
        └── OutcomeUnknown   the request reached the backing service, whose answer never came: it may have
                             taken effect (a retry may apply it twice)
"""

from __future__ import annotations

import enum


class TopicsError(Exception):
    """Base of every error the core reports; ``message`` is safe to show to clients."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(TopicsError):
    """The request is malformed; the message names the bad field."""


class CacheNotFound(TopicsError):
    """The named cache does not exist."""

    def __init__(self, cache_name: str) -> None:
        super().__init__(f"cache not found: {cache_name!r}")
        self.cache_name = cache_name


class WebhookNotFound(TopicsError):
    """The cache has no webhook of that name."""

    def __init__(self, cache_name: str, webhook_name: str) -> None:
        super().__init__(f"webhook not found: {webhook_name!r} in cache {cache_name!r}")
        self.cache_name = cache_name
        self.webhook_name = webhook_name


class CacheAlreadyExists(TopicsError):
    """CreateCache named a cache that already exists."""

    def __init__(self, cache_name: str) -> None:
        super().__init__(f"cache already exists: {cache_name!r}")
        self.cache_name = cache_name


class Limit(enum.Enum):
    """The limits a request can exceed; each value is the ``err`` code clients receive (README *Errors clients see*)."""

    REQUEST_SIZE = "request_size_limit_exceeded"
    TOPIC_SUBSCRIPTIONS = "topic_subscriptions_limit_exceeded"
    OPERATIONS_RATE = "operations_rate_limit_exceeded"
    CACHE_COUNT = "cache_count_limit_exceeded"
    TOPIC_COUNT = "topic_count_limit_exceeded"


class LimitExceeded(TopicsError):
    """A configured limit was hit; nothing was changed."""

    def __init__(self, limit: Limit, message: str) -> None:
        super().__init__(message)
        self.limit = limit


class Unauthenticated(TopicsError):
    """The request carries no acceptable credentials."""


class PermissionDenied(TopicsError):
    """The credentials are valid but do not allow this operation."""


class Unavailable(TopicsError):
    """The server cannot serve this now (shutting down); clients should retry."""


class OutcomeUnknown(Unavailable):
    """The request was sent to the backing service (Redis), but the connection broke or timed out before its
    answer: it may have been applied. Unlike its base, nothing says a retry is safe; transports tell clients
    apart (gRPC ``DEADLINE_EXCEEDED``, HTTP 504)."""
