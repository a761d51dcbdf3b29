"""The sequence pages of a server across restarts: pages only grow, even after a crash and a wall clock that went
backwards (README *Subscriptions, resume and discontinuities*)."""

from __future__ import annotations

from collections.abc import Callable

from tidings.server.core._pages import PageClock
from tidings.server.core._ports import Store

# The store records a page floor this far (in microseconds) ahead of the pages handed out, refreshed at least
# every 30 s, so that even after a crash and a wall clock that went backwards no page is issued twice.
PAGE_FLOOR_RESERVE = 120_000_000


class PageFloor:
    """A `PageClock` (``pages``) whose floor the store keeps ahead of every page it issues."""

    __slots__ = ("_saved", "_store", "_wall_clock", "pages")

    def __init__(self, store: Store, wall_clock: Callable[[], float]) -> None:
        self.pages = PageClock(0, wall_clock)
        self._store = store
        self._wall_clock = wall_clock
        self._saved = 0

    async def load(self) -> None:
        """Issue pages above the floor a previous run recorded, and record a new floor ahead."""
        floor = await self._store.load_page_floor()
        self.pages.observe(floor)
        self._saved = floor
        await self.save_ahead()

    async def save_ahead(self) -> None:
        """Keep the stored floor at least half the reserve ahead of the clock and of every issued page."""
        ahead = max(self.pages.last_issued, int(self._wall_clock() * 1_000_000))
        if ahead + PAGE_FLOOR_RESERVE // 2 > self._saved:
            floor = ahead + PAGE_FLOOR_RESERVE
            await self._store.save_page_floor(floor)
            self._saved = floor

    async def save_last(self) -> None:
        """Record the exact last page (nothing is issued any more), so a clean restart does not drift ahead."""
        await self._store.save_page_floor(self.pages.last_issued)
