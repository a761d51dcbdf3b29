"""Counters and histograms the transports keep, read by ``/metrics`` at scrape time.

Plain ints and lists, no locks: everything runs on one event loop, and the hot path pays an attribute
increment, not a metrics-library call.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from tidings.server.core._events import Discontinuity, Event, Message
from tidings.server.core._log import RetentionBudget

# Seconds; from 100 us to 10 s.
LATENCY_BUCKETS: Final = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


class Histogram:
    """Cumulative-on-read histogram over fixed upper bounds (the last bucket is +Inf)."""

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        """Record one observation."""
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations <= bound) pairs, ending with +Inf."""
        total = 0
        pairs: list[tuple[float, int]] = []
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += count
            pairs.append((bound, total))
        return pairs


class TransportStats:
    """What one transport (gRPC, HTTP, SSE) did since start."""

    __slots__ = (
        "deliveries",
        "delivery_latency",
        "discontinuities",
        "errors",
        "heartbeats",
        "publish_latency",
        "publishes",
    )

    def __init__(self) -> None:
        self.publishes = 0
        self.deliveries = 0
        self.discontinuities = 0
        self.heartbeats = 0
        self.errors: Counter[str] = Counter()  # by status name
        self.publish_latency = Histogram()
        # Publish-to-deliver, sampled once per delivered batch (its newest message).
        self.delivery_latency = Histogram()

    def count_delivered(self, events: Sequence[Event], now: float) -> None:
        """Count a batch a subscriber was sent (any mix of messages, discontinuities and heartbeats);
        publish-to-deliver latency is sampled once per batch, from its newest message."""
        newest: Message | None = None
        messages = 0
        for event in events:
            kind = type(event)
            if kind is Message:
                messages += 1
                newest = event  # type: ignore[assignment]
            elif kind is Discontinuity:
                self.discontinuities += 1
            else:
                self.heartbeats += 1
        if newest is not None:
            self.deliveries += messages
            self.delivery_latency.observe(now - newest.published_at)


class EngineStats:
    """What a shared engine (Redis) did since start: command round trips, connection failures, pub/sub
    reconnects, backfills (stream reads after a gap) and, on a Redis Cluster, slot map reads and failovers
    followed. The memory engine has none."""

    __slots__ = ("backfills", "errors", "failovers", "reconnects", "round_trip", "slot_map_refreshes")

    def __init__(self) -> None:
        self.round_trip = Histogram()
        self.errors = 0
        self.reconnects = 0
        self.backfills = 0
        self.slot_map_refreshes = 0
        self.failovers = 0


@dataclass(frozen=True, slots=True)
class EngineStatus:
    """What an engine reports of itself (`Engine.status`), read by ``/health`` and ``/metrics``.

    ``healthy``: whether it can serve now (false while a shared engine's Redis is unreachable); ``stats``: a shared
    engine's counters (None for a local one); ``retention``: the process-wide retention budget the topic logs
    account against, if the engine keeps one (``--max-retained-bytes``).
    """

    healthy: bool
    stats: EngineStats | None = None
    retention: RetentionBudget | None = None
