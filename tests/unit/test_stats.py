"""Transport counters and histograms."""

from __future__ import annotations

import math

from tidings.server.core import HEARTBEAT, Discontinuity, Histogram, Message, TopicsService, TransportStats


def test_histogram_counts_cumulatively_with_inf_bucket() -> None:
    histogram = Histogram((0.1, 1.0))

    for value in (0.05, 0.1, 0.5, 2.0):
        histogram.observe(value)

    assert histogram.cumulative() == [(0.1, 2), (1.0, 3), (math.inf, 4)]
    assert histogram.count == 4
    assert math.isclose(histogram.sum, 2.65)


async def test_service_stats_for_returns_one_counter_set_per_transport(service: TopicsService) -> None:
    grpc_stats = service.stats_for("grpc")
    grpc_stats.publishes += 3

    assert service.stats_for("grpc") is grpc_stats
    assert service.stats_for("http") is not grpc_stats
    assert service.transport_stats["grpc"].publishes == 3


def test_count_delivered_counts_each_kind_and_samples_latency_from_the_newest_message() -> None:
    stats = TransportStats()
    older = Message(1, 1, "a", "", 1, published_at=10.0)
    newer = Message(1, 2, "b", "", 1, published_at=10.5)

    stats.count_delivered([Discontinuity(0, 0, 1), older, newer], now=11.0)
    stats.count_delivered([HEARTBEAT], now=12.0)

    assert (stats.deliveries, stats.discontinuities, stats.heartbeats) == (2, 1, 1)
    assert stats.delivery_latency.count == 1
    assert math.isclose(stats.delivery_latency.sum, 0.5)
