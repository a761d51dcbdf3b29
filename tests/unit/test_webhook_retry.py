"""The webhook retry schedule (exponential backoff with jitter, bounded by time and attempts) on a fake clock,
and which answers are retried."""

from __future__ import annotations

import itertools

import pytest

from tidings.server.webhooks import Outcome, RetryPolicy, Verdict, deliver_with_retries, outcome_of_status

from ._support import FakeClock

RETRY = Outcome(Verdict.RETRY, "status_5xx")
GIVE_UP = Outcome(Verdict.GIVE_UP, "status_4xx")
DELIVERED = Outcome(Verdict.DELIVERED)


class Endpoint:
    """Answers the scripted outcomes in turn (the last one forever), recording when it was called."""

    def __init__(self, clock: FakeClock, *outcomes: Outcome) -> None:
        self.clock = clock
        self.outcomes = list(outcomes)
        self.calls: list[float] = []

    async def attempt(self) -> Outcome:
        self.calls.append(self.clock())
        return self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]


async def _run(policy: RetryPolicy, endpoint: Endpoint, draw: float) -> tuple[Outcome, list[tuple[str, bool]]]:
    clock = endpoint.clock
    failures: list[tuple[str, bool]] = []

    async def sleep(seconds: float) -> None:
        clock.advance(seconds)

    outcome = await deliver_with_retries(
        endpoint.attempt,
        policy,
        clock=clock,
        sleep=sleep,
        draw=lambda: draw,
        on_failure=lambda failed, retrying: failures.append((failed.reason, retrying)),
    )
    return outcome, failures


def _gaps(calls: list[float]) -> list[float]:
    return [later - earlier for earlier, later in itertools.pairwise(calls)]


@pytest.mark.parametrize(
    ("draw", "expected"),
    [
        pytest.param(0.0, [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0], id="lowest-jitter"),
        pytest.param(0.999999, [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0], id="highest-jitter"),
    ],
)
async def test_delays_double_from_half_a_second_up_to_a_minute_with_jitter(draw: float, expected: list[float]) -> None:
    # Arrange
    endpoint = Endpoint(FakeClock(0.0), *([RETRY] * 9), DELIVERED)

    # Act
    outcome, failures = await _run(RetryPolicy(), endpoint, draw)

    # Assert
    assert outcome == DELIVERED
    assert _gaps(endpoint.calls) == pytest.approx(expected, rel=1e-5)
    assert failures == [("status_5xx", True)] * 9


async def test_retries_stop_within_an_hour() -> None:
    # Arrange
    endpoint = Endpoint(FakeClock(0.0), RETRY)

    # Act
    outcome, failures = await _run(RetryPolicy(), endpoint, 0.999999)

    # Assert
    assert outcome == RETRY
    assert endpoint.calls[-1] <= 3600.0
    assert endpoint.calls[-1] + 60.0 > 3600.0  # one more attempt would have passed the hour
    assert failures[-1] == ("status_5xx", False)
    assert all(retrying for _, retrying in failures[:-1])


async def test_max_attempts_bounds_the_attempts() -> None:
    # Arrange
    endpoint = Endpoint(FakeClock(0.0), RETRY)

    # Act
    outcome, failures = await _run(RetryPolicy(max_attempts=3), endpoint, 0.5)

    # Assert
    assert outcome == RETRY
    assert len(endpoint.calls) == 3
    assert failures == [("status_5xx", True), ("status_5xx", True), ("status_5xx", False)]


async def test_a_refusal_is_not_retried() -> None:
    # Arrange
    endpoint = Endpoint(FakeClock(0.0), GIVE_UP, DELIVERED)

    # Act
    outcome, failures = await _run(RetryPolicy(), endpoint, 0.5)

    # Assert
    assert outcome == GIVE_UP
    assert len(endpoint.calls) == 1
    assert failures == [("status_4xx", False)]


@pytest.mark.parametrize(
    ("status", "verdict", "reason"),
    [
        pytest.param(200, Verdict.DELIVERED, "", id="200"),
        pytest.param(204, Verdict.DELIVERED, "", id="204"),
        pytest.param(301, Verdict.GIVE_UP, "status_3xx", id="redirect-not-followed"),
        pytest.param(400, Verdict.GIVE_UP, "status_4xx", id="400"),
        pytest.param(404, Verdict.GIVE_UP, "status_4xx", id="404"),
        pytest.param(408, Verdict.RETRY, "status_408", id="408"),
        pytest.param(429, Verdict.RETRY, "status_429", id="429"),
        pytest.param(500, Verdict.RETRY, "status_5xx", id="500"),
        pytest.param(503, Verdict.RETRY, "status_5xx", id="503"),
    ],
)
def test_which_statuses_are_retried(status: int, verdict: Verdict, reason: str) -> None:
    assert outcome_of_status(status) == Outcome(verdict, reason)


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"initial": 0.0}, id="zero-initial"),
        pytest.param({"initial": 2.0, "cap": 1.0}, id="initial-above-cap"),
        pytest.param({"max_attempts": -1}, id="negative-attempts"),
    ],
)
def test_policy_refuses_nonsense(fields: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must"):
        RetryPolicy(**fields)  # type: ignore[arg-type]
