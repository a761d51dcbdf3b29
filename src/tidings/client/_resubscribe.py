"""When a subscription resubscribes, and how long it waits: the retryable statuses and backoff with full jitter."""

from __future__ import annotations

import random
from typing import Final

import grpc

BACKOFF_BASE: Final = 0.1
"""Seconds: the first resubscribe waits up to this long; each failed attempt doubles it."""
BACKOFF_CAP: Final = 3.0
"""Seconds: the longest wait between resubscribe attempts. A stream that lived longer than this was healthy,
so its failure starts the backoff over."""

RETRYABLE: Final = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,  # connection lost, server restarting or shutting down
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,  # a proxy's stream deadline; ours have none
        # Not ours: unsubscribe() ends the subscription before it cancels the call, so a CANCELLED stream of
        # an open subscription was reset by the server (an overloaded gRPC server resets calls it cannot take
        # in time) or by a proxy.
        grpc.StatusCode.CANCELLED,
    }
)
"""Stream failures a subscription resubscribes after; any other status ends it."""

START_RETRYABLE: Final = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED})
"""Failures of the first stream that `subscribe` retries, with the same backoff, until its timeout."""


def full_jitter(attempt: int) -> float:
    """Seconds to wait before resubscribe attempt ``attempt`` (0 first): uniform in [0, min(cap, base * 2**attempt)].

    Full jitter spreads the subscribers of a restarted server over the whole window instead of letting them
    return in waves.
    """
    return random.uniform(0.0, min(BACKOFF_CAP, BACKOFF_BASE * 2 ** min(attempt, 32)))
