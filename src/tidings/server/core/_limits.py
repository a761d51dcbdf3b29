"""Configured limits and the per-cache publish rate limiter."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    """Server limits (README *Errors clients see*); ``None`` rate means unlimited."""

    max_message_bytes: int = 4096
    max_subscriptions_per_cache: int = 10_000
    publish_rate_per_cache: float | None = None
    retention_messages: int = 1_000
    retention_bytes: int = 1024 * 1024
    max_caches: int = 1_000
    max_topics_per_cache: int = 10_000
    topic_idle_ttl: float = 600.0
    # What every topic's retention buffer may hold together (values and their cached encodings).
    max_retained_bytes: int = 256 * 1024 * 1024

    def __post_init__(self) -> None:
        for name in (
            "max_message_bytes",
            "max_subscriptions_per_cache",
            "retention_messages",
            "max_caches",
            "max_topics_per_cache",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.retention_bytes < self.max_message_bytes:
            raise ValueError("retention_bytes must be at least max_message_bytes")
        if self.max_retained_bytes < self.retention_bytes:
            raise ValueError("max_retained_bytes must be at least retention_bytes")
        rate = self.publish_rate_per_cache
        if rate is not None and not (0 < rate < math.inf):
            raise ValueError("publish_rate_per_cache must be positive and finite")
        if not (0 < self.topic_idle_ttl < math.inf):
            raise ValueError("topic_idle_ttl must be positive and finite")


class TokenBucket:
    """A token bucket of ``rate`` tokens per second holding at most ``burst`` tokens."""

    __slots__ = ("_burst", "_rate", "_stamp", "_tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self._rate = rate
        self._burst = burst
        self._tokens = burst
        self._stamp = now

    def try_take(self, now: float, count: float = 1.0) -> bool:
        """Take ``count`` tokens if there are that many; False, taking none, when the rate is exceeded."""
        tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        if tokens < count:
            self._tokens = tokens
            return False
        self._tokens = tokens - count
        return True
