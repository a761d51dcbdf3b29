"""Momento Local's fault-injection headers: parsing, matching and per-request-id counters (no sockets)."""

from __future__ import annotations

import grpc
import pytest

from tidings.server.grpc._faults import RPCS, BadFaultHeader, FaultCounters, FaultPlan

from ._support import FakeClock


def test_fault_plan_reads_every_header() -> None:
    # Act
    plan = FaultPlan.from_metadata(
        [
            ("authorization", ""),
            ("request-id", "r1"),
            ("return-error", "unavailable"),
            ("error-rpcs", "topic-publish create-cache"),
            ("error-count", "2"),
            ("delay-rpcs", "topic-subscribe"),
            ("delay-ms", "150"),
            ("delay-count", "1"),
            ("stream-error-rpcs", "topic-subscribe"),
            ("stream-error", "not-found"),
            ("stream-error-message-limit", "3"),
        ]
    )

    # Assert
    assert plan == FaultPlan(
        request_id="r1",
        return_error=grpc.StatusCode.UNAVAILABLE,
        error_rpcs=frozenset({"topic-publish", "create-cache"}),
        error_count=2,
        delay_ms=150,
        delay_rpcs=frozenset({"topic-subscribe"}),
        delay_count=1,
        stream_error=grpc.StatusCode.NOT_FOUND,
        stream_error_rpcs=frozenset({"topic-subscribe"}),
        stream_error_message_limit=3,
    )


def test_fault_plan_is_none_without_fault_headers() -> None:
    assert FaultPlan.from_metadata([("authorization", "x"), ("agent", "python")]) is None


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("return-error", "teapot"),
        ("stream-error", "ok"),
        ("error-rpcs", "topic-publish get"),
        ("delay-rpcs", "nope"),
        ("error-count", "-1"),
        ("delay-ms", "soon"),
        ("stream-error-message-limit", "1.5"),
    ],
)
def test_fault_plan_refuses_unknown_values_naming_the_header(header: str, value: str) -> None:
    with pytest.raises(BadFaultHeader, match=f"^{header}: "):
        FaultPlan.from_metadata([(header, value)])


def test_fault_plan_without_rpc_lists_matches_every_rpc_and_streams_of_subscribe() -> None:
    plan = FaultPlan(return_error=grpc.StatusCode.INTERNAL, delay_ms=10, stream_error=grpc.StatusCode.UNAVAILABLE)

    assert all(plan.fails(rpc) and plan.delays(rpc) for rpc in RPCS.values())
    assert plan.breaks_stream("topic-subscribe")
    assert not plan.breaks_stream("topic-publish")


def test_fault_plan_with_rpc_lists_matches_only_those() -> None:
    plan = FaultPlan(return_error=grpc.StatusCode.INTERNAL, error_rpcs=frozenset({"topic-publish"}))

    assert plan.fails("topic-publish")
    assert not plan.fails("topic-subscribe")
    assert not FaultPlan(delay_ms=0).delays("topic-publish")  # no delay to apply


def test_counters_allow_exactly_the_count_per_request_id() -> None:
    counters = FaultCounters(FakeClock(0.0))

    first = [counters.take("a", "error", 2) for _ in range(4)]
    other = [counters.take("b", "error", 2) for _ in range(3)]
    delays = [counters.take("a", "delay", 1) for _ in range(2)]
    unlimited = [counters.take("a", "other", None) for _ in range(5)]

    assert first == [True, True, False, False]
    assert other == [True, True, False]
    assert delays == [True, False]
    assert unlimited == [True] * 5


def test_counters_are_forgotten_after_their_ttl() -> None:
    clock = FakeClock(0.0)
    counters = FaultCounters(clock, ttl=60.0)
    assert counters.take("a", "error", 1)
    assert not counters.take("a", "error", 1)

    clock.advance(59.0)
    assert not counters.take("a", "error", 1)  # used again: the TTL counts from the last use
    clock.advance(61.0)
    counters.take("b", "error", 1)  # any call sweeps

    assert len(counters) == 1
    assert counters.take("a", "error", 1)  # a new counter
