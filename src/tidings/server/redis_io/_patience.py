"""Timeouts on Redis's answers that do not count the server's own stalls (`responsive_wait`).

A worker that holds hundreds of thousands of subscriptions stops its event loop for seconds at a time: a full
garbage collection walks every object (measured with 1,000,000 subscriptions over two workers: 1.3 s at 170,000
subscriptions a worker, growing to 2.7 s at 500,000). An answer Redis sends meanwhile waits, unread, in the socket,
and when the loop runs again a plain timeout fires before the read it would see: Redis was declared silent, its
connection broken, and subscribes failed with UNAVAILABLE (the 1,000,000-subscription benchmark stopped so).
These waits count only the time the loop was running: the timeout is waited in slices, each counted at its
length however late the loop came back from it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Final, TypeVar

T = TypeVar("T")

# A timeout is waited in this many slices: a stall longer than a slice costs that slice only.
SLICES: Final = 8


async def responsive_wait(awaitable: Awaitable[T], seconds: float) -> T:
    """``asyncio.wait_for(awaitable, seconds)`` with ``seconds`` counted in the loop's running time: raises
    `TimeoutError` (and cancels the awaitable) once `SLICES` slices of ``seconds / SLICES`` passed without it.
    (Not ``asyncio.timeout``: that counts the stalls.)"""
    future = asyncio.ensure_future(awaitable)
    step = seconds / SLICES
    try:
        for _ in range(SLICES):
            done, _ = await asyncio.wait((future,), timeout=step)
            if done:
                return future.result()
        raise TimeoutError
    finally:
        if not future.done():
            future.cancel()


class Silence:
    """How long a connection has left calls unanswered, in the loop's running time: `Silence.grew` counts each
    check's interval at its nominal length (a stall between two checks is not Redis's silence)."""

    __slots__ = ("seconds",)

    def __init__(self) -> None:
        self.seconds = 0.0

    def grew(self, interval: float, answered: bool) -> float:
        """One check, ``interval`` after the last: the silence so far (0 when an answer came meanwhile)."""
        self.seconds = 0.0 if answered else self.seconds + interval
        return self.seconds
