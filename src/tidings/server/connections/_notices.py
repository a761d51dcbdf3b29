"""Log lines that a flood could multiply, one a minute at most: a client that speaks the other port's protocol
(gRPC on the HTTP port, HTTP/1.1 on the gRPC port), and hostile clients over a transport's limits."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final

# A notice of one kind is logged at most once per this many seconds.
NOTICE_INTERVAL: Final = 60.0


class WrongPortNotices:
    """Counts the connections that came to the wrong port and logs about them, at most once per interval."""

    def __init__(self, logger: logging.Logger, clock: Callable[[], float] = time.monotonic) -> None:
        self._logger = logger
        self._clock = clock
        self._logged = -NOTICE_INTERVAL
        self.count = 0

    def seen(self, message: str, *args: object) -> None:
        """One more such connection; log ``message % args`` (then `count` in parentheses) unless one was logged
        within the interval."""
        self.count += 1
        now = self._clock()
        if now - self._logged >= NOTICE_INTERVAL:
            self._logged = now
            self._logger.warning(message + " (such connections so far: %d)", *args, self.count)


class Notices:
    """One log line per kind of violation at most every `NOTICE_INTERVAL` seconds, counting them: a flood of
    hostile streams or connections costs the log a line a minute."""

    __slots__ = ("_clock", "_counts", "_interval", "_logged", "_logger")

    def __init__(
        self, logger: logging.Logger, interval: float = NOTICE_INTERVAL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._logger = logger
        self._interval = interval
        self._clock = clock
        self._counts: dict[str, int] = {}
        self._logged: dict[str, float] = {}

    def seen(self, message: str, *args: object) -> None:
        """One more violation of the kind ``message`` names; log ``message % args`` with the count since the
        last line of that kind, unless one was logged within the interval."""
        count = self._counts[message] = self._counts.get(message, 0) + 1
        now = self._clock()
        if now - self._logged.get(message, -self._interval) >= self._interval:
            self._logged[message] = now
            self._counts[message] = 0
            self._logger.warning(message + " (%d such since the last line)", *args, count)
