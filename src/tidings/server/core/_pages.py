"""Sequence pages: nonzero, strictly increasing per server, also across restarts (README *Subscriptions, resume
and discontinuities*)."""

from __future__ import annotations

import time
from collections.abc import Callable


class PageClock:
    """Hands out sequence pages derived from wall-clock microseconds, bumped past the last one issued.

    ``floor`` is the highest page a previous run recorded, so a clock that went backwards (or pages issued
    faster than one per microsecond) never repeats a page after a restart.
    """

    __slots__ = ("_last", "_wall_clock")

    def __init__(self, floor: int = 0, wall_clock: Callable[[], float] = time.time) -> None:
        self._last = floor
        self._wall_clock = wall_clock

    @property
    def last_issued(self) -> int:
        """The highest page issued (or the floor when none was issued yet)."""
        return self._last

    def observe(self, sequence_page: int) -> None:
        """Never issue ``sequence_page`` or a smaller one (a page another process issued, seen in a shared engine)."""
        if sequence_page > self._last:
            self._last = sequence_page

    def next_page(self) -> int:
        """A page strictly greater than every page issued before."""
        page = max(int(self._wall_clock() * 1_000_000), self._last + 1)
        self._last = page
        return page
