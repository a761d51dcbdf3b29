"""How a run of failures is logged: a few lines per outage, however many attempts fail during it.

Something retried often (a webhook's deliveries, the refresh of API keys and webhooks from Redis) would
otherwise log one line per failed attempt: tens of thousands in an outage of a receiver or of Redis. A
`FailureLog` logs instead:

- one WARNING when the failures start, with the reason;
- at most one WARNING reminder per ``remind_every`` seconds while they go on, counting the failures since the
  previous line (written at the next failure after the interval: no timer is needed);
- one INFO line when it works again, with the outage's total and duration.

One log may cover several things that one cause fails together (both refresh loops, or the leases of every
webhook, while Redis is unreachable): each names itself with ``by``, and the outage ends only once none of them
is failing. One of them failing on its own while the others work is then one outage too, not a start and an
end line at every attempt.

The clock is injectable, so the rate limit is tested without sleeping.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable
from typing import Final

# Reminders while an outage lasts: at most one per minute for each thing that fails.
REMIND_EVERY: Final = 60.0


class FailureLog:
    """The log of one thing's failures (a webhook, the store), or of several failing from one cause, as a start
    line, rate-limited reminders and a recovery line.

    ``subject`` names the thing in each line (``"webhook 'orders' of cache 'shop'"``). ``lost_noun``, when
    given, names what `failed` calls may count as lost (``"messages given up"``): the reminder and recovery
    lines then say how many.
    """

    def __init__(
        self,
        logger: logging.Logger,
        subject: str,
        *,
        lost_noun: str = "",
        remind_every: float = REMIND_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.subject = subject
        self._logger = logger
        self._lost_noun = lost_noun
        self._remind_every = remind_every
        self._clock = clock
        self._failing: set[Hashable] = set()  # which of the things covered failed last time (empty: all work)
        self._started_at = 0.0  # when the current outage began
        self._logged_at = 0.0  # when its last line was written
        self._failures = 0  # failures of the outage so far
        self._lost = 0
        self._unlogged_failures = 0  # failures since its last line
        self._unlogged_lost = 0

    @property
    def failing(self) -> bool:
        """Whether the last outcome of something this log covers was a failure."""
        return bool(self._failing)

    def failed(self, reason: str, *, lost: int = 0, exc_info: BaseException | None = None, by: Hashable = None) -> None:
        """Count one failure of ``by`` (and ``lost`` things lost by it); log it if it starts an outage, or a
        reminder if the last line is ``remind_every`` seconds old. ``exc_info`` (an unexpected error) is shown
        with the line that starts the outage."""
        now = self._clock()
        self._failures += 1
        self._lost += lost
        self._unlogged_failures += 1
        self._unlogged_lost += lost
        if not self._failing:
            self._failing.add(by)
            self._started_at = self._logged_at = now
            self._unlogged_failures = self._unlogged_lost = 0
            self._logger.warning("%s is failing: %s", self.subject, reason, exc_info=exc_info)
            return
        self._failing.add(by)
        if now - self._logged_at >= self._remind_every:
            self._logger.warning(
                "%s is still failing: %s in the last %.0f s (the last: %s)",
                self.subject,
                self._count(self._unlogged_failures, self._unlogged_lost),
                now - self._logged_at,
                reason,
            )
            self._logged_at = now
            self._unlogged_failures = self._unlogged_lost = 0

    def succeeded(self, by: Hashable = None) -> None:
        """``by`` works (or is gone: a deleted webhook): once nothing this log covers is failing, log the end of
        the outage, if there was one (cheap when there was none)."""
        if not self._failing:
            return
        self._failing.discard(by)
        if self._failing:
            return  # something else still fails: the outage goes on
        self._logger.info(
            "%s works again after %s in %.1f s",
            self.subject,
            self._count(self._failures, self._lost),
            self._clock() - self._started_at,
        )
        self._failures = self._lost = self._unlogged_failures = self._unlogged_lost = 0

    def _count(self, failures: int, lost: int) -> str:
        counted = f"{failures} failure{'' if failures == 1 else 's'}"
        return f"{counted} ({self._lost_noun}: {lost})" if self._lost_noun else counted
