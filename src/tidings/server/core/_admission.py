"""What a request must pass before the service acts on it: its size, and the caller's permission."""

from __future__ import annotations

from tidings.server.core._auth import Principal, TopicPermission
from tidings.server.core._errors import InvalidArgument, Limit, LimitExceeded, PermissionDenied


def measure(value: str | bytes, max_message_bytes: int) -> int:
    """The size of a value to publish (UTF-8 bytes for text), validated: not empty, within the message size limit."""
    if isinstance(value, bytes):
        size = len(value)
    else:
        try:
            size = len(value.encode("utf-8"))
        except UnicodeEncodeError:  # lone surrogates
            raise InvalidArgument("text value must be UTF-8") from None
    if size == 0:
        raise InvalidArgument("value must not be empty")
    if size > max_message_bytes:
        raise LimitExceeded(
            Limit.REQUEST_SIZE, f"message of {size} bytes exceeds the limit of {max_message_bytes} bytes"
        )
    return size


def require_super_user(principal: Principal, managing: str = "cache") -> None:
    """Managing caches (or ``managing`` something else: webhooks) is for super-user keys only: `PermissionDenied`
    for anyone else. The one check for every management call, so that all of them refuse alike."""
    if not principal.super_user:
        raise PermissionDenied(f"{managing} management needs a super-user key")


def denied(action: TopicPermission, cache_name: str, topic_name: str) -> PermissionDenied:
    """The error of a caller not allowed to publish to or subscribe to the topic."""
    verb = "publish to" if action is TopicPermission.PUBLISH else "subscribe to"
    return PermissionDenied(f"not allowed to {verb} topic {topic_name!r} in cache {cache_name!r}")


def rate_limited(publish_rate_per_cache: float | None) -> LimitExceeded:
    """The error of a publish over its cache's rate limit."""
    return LimitExceeded(
        Limit.OPERATIONS_RATE, f"publish rate limit exceeded: {publish_rate_per_cache:g} per second per cache"
    )


def too_many_subscriptions(max_subscriptions_per_cache: int) -> LimitExceeded:
    """The error of a subscribe to a cache that has as many subscriptions as it may."""
    return LimitExceeded(
        Limit.TOPIC_SUBSCRIPTIONS, f"subscription limit exceeded: at most {max_subscriptions_per_cache} per cache"
    )
