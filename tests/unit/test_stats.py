"""Transport counters and histograms."""

from __future__ import annotations

import math

from tidings.server.core import Histogram, TopicsService


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
