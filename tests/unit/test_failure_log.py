"""FailureLog: one line when failures start, at most one reminder per interval, one when it works again, on a fake
clock (issue 16 item 9, issue 17 item 5)."""

from __future__ import annotations

import logging

import pytest

from tidings.server.core import FailureLog

from ._support import FakeClock

LOGGER = "tests.failure_log"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(500.0)


@pytest.fixture
def log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Captures `LOGGER` from DEBUG up."""
    caplog.set_level(logging.DEBUG, LOGGER)
    return caplog


def _log(clock: FakeClock, **options: object) -> FailureLog:
    return FailureLog(logging.getLogger(LOGGER), "the thing", clock=clock, **options)  # type: ignore[arg-type]


def _lines(records: list[logging.LogRecord]) -> list[tuple[str, str]]:
    return [(record.levelname, record.getMessage()) for record in records if record.name == LOGGER]


def test_failure_log_logs_one_warning_for_many_failures_within_the_interval(
    clock: FakeClock, log: pytest.LogCaptureFixture
) -> None:
    # Arrange
    failures = _log(clock, remind_every=60.0)

    # Act
    for _ in range(1000):
        failures.failed("connection refused")
        clock.advance(0.05)  # 50 s in all

    # Assert
    assert _lines(log.records) == [("WARNING", "the thing is failing: connection refused")]
    assert failures.failing


def test_failure_log_reminds_at_most_once_per_interval_counting_the_failures_since(
    clock: FakeClock, log: pytest.LogCaptureFixture
) -> None:
    # Arrange
    failures = _log(clock, remind_every=60.0)

    # Act: one failure every 10 s for 200 s
    for attempt in range(21):
        failures.failed(f"attempt {attempt}")
        clock.advance(10.0)

    # Assert: the start at 0 s, reminders at 60, 120 and 180 s, each counting the 6 failures after the last line
    assert _lines(log.records) == [
        ("WARNING", "the thing is failing: attempt 0"),
        ("WARNING", "the thing is still failing: 6 failures in the last 60 s (the last: attempt 6)"),
        ("WARNING", "the thing is still failing: 6 failures in the last 60 s (the last: attempt 12)"),
        ("WARNING", "the thing is still failing: 6 failures in the last 60 s (the last: attempt 18)"),
    ]


def test_failure_log_logs_the_recovery_once_at_info_with_the_outage_totals(
    clock: FakeClock, log: pytest.LogCaptureFixture
) -> None:
    # Arrange
    failures = _log(clock, remind_every=60.0)
    for _ in range(30):
        failures.failed("timeout")
        clock.advance(2.5)

    # Act
    failures.succeeded()
    failures.succeeded()

    # Assert
    assert _lines(log.records)[-1] == ("INFO", "the thing works again after 30 failures in 75.0 s")
    assert [level for level, _ in _lines(log.records)] == ["WARNING", "WARNING", "INFO"]
    assert not failures.failing


def test_failure_log_success_without_a_failure_logs_nothing(clock: FakeClock, log: pytest.LogCaptureFixture) -> None:
    # Arrange
    failures = _log(clock)

    # Act
    for _ in range(5):
        failures.succeeded()

    # Assert
    assert _lines(log.records) == []


def test_failure_log_starts_over_after_a_recovery(clock: FakeClock, log: pytest.LogCaptureFixture) -> None:
    # Arrange
    failures = _log(clock, remind_every=60.0)
    failures.failed("first outage")
    clock.advance(1.0)
    failures.succeeded()

    # Act
    clock.advance(1.0)
    failures.failed("second outage")

    # Assert
    assert _lines(log.records) == [
        ("WARNING", "the thing is failing: first outage"),
        ("INFO", "the thing works again after 1 failure in 1.0 s"),
        ("WARNING", "the thing is failing: second outage"),
    ]


def test_failure_log_counts_what_was_lost_in_reminders_and_recovery(
    clock: FakeClock, log: pytest.LogCaptureFixture
) -> None:
    # Arrange
    failures = _log(clock, remind_every=60.0, lost_noun="messages given up")

    # Act
    failures.failed("retrying")
    clock.advance(30.0)
    failures.failed("gave up", lost=1)
    clock.advance(30.0)
    failures.failed("gave up", lost=1)
    failures.succeeded()

    # Assert
    assert _lines(log.records)[1:] == [
        (
            "WARNING",
            "the thing is still failing: 2 failures (messages given up: 2) in the last 60 s (the last: gave up)",
        ),
        ("INFO", "the thing works again after 3 failures (messages given up: 2) in 60.0 s"),
    ]


def test_failure_log_shows_an_unexpected_error_with_the_line_that_starts_the_outage(
    clock: FakeClock, log: pytest.LogCaptureFixture
) -> None:
    # Arrange
    failures = _log(clock, remind_every=60.0)
    error = KeyError("bug")

    # Act
    failures.failed("KeyError: 'bug'", exc_info=error)
    clock.advance(60.0)
    failures.failed("KeyError: 'bug'", exc_info=error)

    # Assert
    assert log.records[0].exc_info is not None
    assert log.records[0].exc_info[1] is error
    assert not log.records[1].exc_info


def test_failure_log_one_thing_failing_while_another_works_is_one_outage(
    clock: FakeClock, log: pytest.LogCaptureFixture
) -> None:
    # Arrange: one log covers two refresh loops; the keys' keeps failing with a bug while the webhooks' works.
    failures = _log(clock, remind_every=60.0)

    # Act: both run every 0.5 s for 50 s
    for _ in range(100):
        failures.failed("JSONDecodeError: bad key record", by="keys")
        failures.succeeded(by="webhooks")
        clock.advance(0.5)

    # Assert: one line, not a start and an end line at every attempt
    assert _lines(log.records) == [("WARNING", "the thing is failing: JSONDecodeError: bad key record")]
    assert failures.failing


def test_failure_log_covering_several_things_recovers_when_the_last_one_works(
    clock: FakeClock, log: pytest.LogCaptureFixture
) -> None:
    # Arrange: an outage fails both things.
    failures = _log(clock, remind_every=60.0)
    failures.failed("Redis is unreachable", by="keys")
    failures.failed("Redis is unreachable", by="webhooks")
    clock.advance(2.0)

    # Act
    failures.succeeded(by="keys")
    still_failing = failures.failing
    failures.succeeded(by="webhooks")

    # Assert
    assert still_failing
    assert _lines(log.records) == [
        ("WARNING", "the thing is failing: Redis is unreachable"),
        ("INFO", "the thing works again after 2 failures in 2.0 s"),
    ]
    assert not failures.failing
