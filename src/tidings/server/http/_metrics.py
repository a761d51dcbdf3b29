"""``/metrics``: the core's plain counters in Prometheus' text format, read at scrape time.

The transports count with attribute increments (``TransportStats``); nothing on the hot path calls
prometheus-client. A custom collector turns the counters into metric families when Prometheus scrapes.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Callable, Iterator

from prometheus_client import GCCollector, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import CollectorRegistry
from starlette.requests import Request
from starlette.responses import Response

from tidings.server.core import EngineStats, EngineStatus, Histogram, RetentionBudget, TopicsService, TransportStats
from tidings.server.webhooks import WebhookStatus

WebhookStatuses = Callable[[], list[WebhookStatus]]

# The classic text format, which every Prometheus version scrapes.
EXPOSITION_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _buckets(histogram: Histogram) -> list[tuple[str, float]]:
    return [("+Inf" if math.isinf(bound) else repr(bound), count) for bound, count in histogram.cumulative()]


class TopicsCollector:
    """Collects the service's counters per transport and its gauges (subscriptions, topics, caches)."""

    def __init__(
        self, service: TopicsService, live_requests: Callable[[], int], webhooks: WebhookStatuses | None = None
    ) -> None:
        self._service = service
        self._live_requests = live_requests
        self._webhooks = webhooks
        # The engine's status, read (asynchronously) just before each scrape collects.
        self.engine_status = EngineStatus(healthy=True)

    def collect(self) -> Iterator[Metric]:
        """Metric families with the current values (called by the registry at scrape time)."""
        service = self._service
        yield from _transport_families(sorted(service.transport_stats.items()))
        engine = self.engine_status
        yield from _service_gauges(service, engine.retention)
        yield GaugeMetricFamily(
            "tidings_http_live_requests",
            "Open SSE streams, gRPC-web streams and waiting long polls",
            self._live_requests(),
        )
        if engine.stats is not None:
            yield from _redis_metrics(engine.stats, engine.healthy)
        if self._webhooks is not None:
            yield from _webhook_families(self._webhooks())


def _transport_families(transports: list[tuple[str, TransportStats]]) -> Iterator[Metric]:
    """Per transport (label ``transport``): publishes, deliveries, errors by status, and the latencies."""
    counters = {
        "publishes": "Messages published",
        "deliveries": "Messages delivered to subscribers",
        "discontinuities": "Discontinuities delivered to subscribers",
        "heartbeats": "Heartbeats sent to subscribers",
    }
    for name, documentation in counters.items():
        family = CounterMetricFamily(f"tidings_{name}", documentation, labels=["transport"])
        for transport, stats in transports:
            family.add_metric([transport], getattr(stats, name))
        yield family
    errors = CounterMetricFamily(
        "tidings_errors",
        "Requests that failed, by status (gRPC code name or HTTP status)",
        labels=["transport", "status"],
    )
    for transport, stats in transports:
        for status, count in sorted(stats.errors.items()):
            errors.add_metric([transport, status], count)
    yield errors
    histograms = {
        "publish_latency": ("tidings_publish_latency_seconds", "Time to handle a publish request"),
        "delivery_latency": (
            "tidings_publish_to_deliver_latency_seconds",
            "Time from publish to delivery, sampled once per delivered batch",
        ),
    }
    for attribute, (name, documentation) in histograms.items():
        histogram_family = HistogramMetricFamily(name, documentation, labels=["transport"])
        for transport, stats in transports:
            histogram: Histogram = getattr(stats, attribute)
            histogram_family.add_metric([transport], _buckets(histogram), histogram.sum)
        yield histogram_family


def _service_gauges(service: TopicsService, usage: RetentionBudget | None) -> Iterator[Metric]:
    """What the service holds now: subscriptions, topics, caches, frozen start-up objects, retained bytes."""
    yield GaugeMetricFamily("tidings_subscriptions", "Open subscriptions", service.subscription_total())
    yield GaugeMetricFamily("tidings_topics", "Live topic instances", service.topic_count())
    yield GaugeMetricFamily("tidings_caches", "Caches", service.cache_count())
    yield GaugeMetricFamily(
        "tidings_gc_frozen_objects",
        "Start-up objects kept out of the garbage collector's full collections (tidings server freezes them)",
        gc.get_freeze_count(),
    )
    if usage is not None:
        yield GaugeMetricFamily(
            "tidings_retained_bytes", "Bytes all retention buffers hold (values and encodings)", usage.used_bytes
        )
        yield GaugeMetricFamily("tidings_retained_bytes_limit", "--max-retained-bytes", usage.max_bytes)
        yield CounterMetricFamily(
            "tidings_retained_bytes_trimmed",
            "Retained bytes dropped to stay within --max-retained-bytes",
            usage.trimmed_bytes,
        )


def _webhook_families(statuses: list[WebhookStatus]) -> Iterator[Metric]:
    """Per webhook (labels ``cache``, ``webhook``): deliveries, failures by reason, retries, gaps and lag."""
    labels = ["cache", "webhook"]
    counters = {
        "delivered": ("tidings_webhook_deliveries", "Messages a webhook's endpoint accepted (2xx)"),
        "retries": ("tidings_webhook_retries", "Failed webhook attempts that were retried"),
        "dropped": ("tidings_webhook_dropped", "Messages a webhook gave up on (not retried, or retries exhausted)"),
        "discontinuities": (
            "tidings_webhook_discontinuities",
            "Times a webhook skipped ahead: messages left the retention buffer before delivery, or a topic reset",
        ),
        "missed_messages": ("tidings_webhook_missed_messages", "Messages skipped by webhook discontinuities"),
    }
    for attribute, (name, documentation) in counters.items():
        family = CounterMetricFamily(name, documentation, labels=labels)
        for status in statuses:
            family.add_metric([status.webhook.cache_name, status.webhook.name], getattr(status.stats, attribute))
        yield family
    failures = CounterMetricFamily(
        "tidings_webhook_failures",
        "Failed webhook attempts by reason (timeout, connection, status_5xx, status_429, status_4xx, ...)",
        labels=[*labels, "reason"],
    )
    lag = GaugeMetricFamily("tidings_webhook_lag_messages", "Messages published and not yet delivered", labels=labels)
    for status in statuses:
        key = [status.webhook.cache_name, status.webhook.name]
        for reason, count in sorted(status.stats.failures.items()):
            failures.add_metric([*key, reason], count)
        lag.add_metric(key, status.lag)
    yield failures
    yield lag


def _redis_metrics(stats: EngineStats, healthy: bool) -> Iterator[Metric]:
    """The Redis engine's families (only with ``--redis-url`` or ``--redis-cluster``)."""
    round_trip = HistogramMetricFamily("tidings_redis_round_trip_seconds", "Redis command round trips")
    round_trip.add_metric([], _buckets(stats.round_trip), stats.round_trip.sum)
    yield round_trip
    yield CounterMetricFamily("tidings_redis_errors", "Redis connection failures", stats.errors)
    yield CounterMetricFamily("tidings_redis_reconnects", "Redis pub/sub connections re-established", stats.reconnects)
    yield CounterMetricFamily(
        "tidings_redis_backfills", "Topic streams read again after a gap or a reconnect", stats.backfills
    )
    yield CounterMetricFamily(
        "tidings_redis_slot_map_refreshes",
        "Redis Cluster slot maps read (at start, after a -MOVED reply or a lost node)",
        stats.slot_map_refreshes,
    )
    yield CounterMetricFamily(
        "tidings_redis_failovers",
        "Redis Cluster failovers followed: a master replaced by another node in the slot map",
        stats.failovers,
    )
    yield GaugeMetricFamily("tidings_redis_up", "1 while the Redis pub/sub connections are up", int(healthy))


class MetricsEndpoint:
    """``GET /metrics``: a registry of its own (not the process-global one) with tidings and process metrics."""

    def __init__(
        self, service: TopicsService, live_requests: Callable[[], int], webhooks: WebhookStatuses | None = None
    ) -> None:
        self.registry = CollectorRegistry()
        self._service = service
        self._collector = TopicsCollector(service, live_requests, webhooks)
        self.registry.register(self._collector)
        ProcessCollector(registry=self.registry)
        GCCollector(registry=self.registry)

    async def endpoint(self, request: Request) -> Response:
        """The exposition, rendered now."""
        self._collector.engine_status = await self._service.engine_status()
        return Response(generate_latest(self.registry), headers={"content-type": EXPOSITION_CONTENT_TYPE})
