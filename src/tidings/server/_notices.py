"""A client that speaks the other port's protocol (gRPC on the HTTP port, HTTP/1.1 on the gRPC port): one
helpful log line a minute at most, however many such connections come."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final

# A wrong-port notice is logged at most once per this many seconds.
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
