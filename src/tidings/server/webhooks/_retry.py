"""When a failed delivery is tried again: exponential backoff with jitter, bounded in time and attempts."""

from __future__ import annotations

import enum
import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

# Statuses that mean "try again later" although they are 4xx.
RETRYABLE_4XX: Final = frozenset({408, 429})


class Verdict(enum.Enum):
    """What one attempt's outcome means for the message."""

    DELIVERED = "delivered"
    RETRY = "retry"
    GIVE_UP = "give_up"


@dataclass(frozen=True, slots=True)
class Outcome:
    """One attempt: its verdict and, for a failure, the reason (the ``reason`` label of the failure metric)."""

    verdict: Verdict
    reason: str = ""


DELIVERED: Final = Outcome(Verdict.DELIVERED)


def outcome_of_status(status: int) -> Outcome:
    """2xx is delivered; 408, 429 and 5xx are retried; any other status (3xx: redirects are not followed;
    4xx: the receiver refuses this event) is not."""
    if 200 <= status < 300:
        return DELIVERED
    if status >= 500 or status in RETRYABLE_4XX:
        return Outcome(Verdict.RETRY, f"status_{status // 100}xx" if status >= 500 else f"status_{status}")
    return Outcome(Verdict.GIVE_UP, f"status_{status // 100}xx")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Delays of ``initial`` seconds doubling up to ``cap``, each with jitter (a uniform draw from its upper
    half), while the message is younger than ``max_elapsed`` seconds and attempts stay under ``max_attempts``
    (0: no limit but time)."""

    initial: float = 0.5
    cap: float = 60.0
    max_elapsed: float = 3600.0
    max_attempts: int = 0

    def __post_init__(self) -> None:
        if not (0 < self.initial <= self.cap < math.inf):
            raise ValueError("retry delays must be positive, finite, and initial <= cap")
        if self.max_elapsed < 0 or self.max_attempts < 0:
            raise ValueError("max_elapsed and max_attempts must not be negative")

    def delay(self, attempt: int, draw: float) -> float:
        """The wait after failed attempt number ``attempt`` (1-based); ``draw`` is uniform in [0, 1)."""
        ceiling = min(self.cap, self.initial * 2.0 ** min(attempt - 1, 64))
        return ceiling / 2 + ceiling / 2 * draw

    def allows(self, attempts: int, elapsed: float) -> bool:
        """Whether another attempt may follow ``attempts`` attempts, ``elapsed`` seconds after the first."""
        if self.max_attempts and attempts >= self.max_attempts:
            return False
        return elapsed < self.max_elapsed


async def deliver_with_retries(
    attempt: Callable[[], Awaitable[Outcome]],
    policy: RetryPolicy,
    *,
    clock: Callable[[], float],
    sleep: Callable[[float], Awaitable[None]],
    draw: Callable[[], float] = random.random,
    on_failure: Callable[[Outcome, bool], None] = lambda outcome, retrying: None,
) -> Outcome:
    """Call ``attempt`` until it delivers, gives up, or ``policy`` allows no more; returns the last outcome.

    ``on_failure(outcome, retrying)`` is told about each failed attempt and whether another one follows.
    """
    started = clock()
    attempts = 0
    while True:
        outcome = await attempt()
        attempts += 1
        if outcome.verdict is Verdict.DELIVERED:
            return outcome
        delay = policy.delay(attempts, draw())
        retrying = outcome.verdict is Verdict.RETRY and policy.allows(attempts, clock() + delay - started)
        on_failure(outcome, retrying)
        if not retrying:
            return outcome
        await sleep(delay)
