"""Sequence pages: nonzero, strictly increasing, also across restarts and a backwards wall clock."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidings.server.core import PageClock
from tidings.server.store.sqlite import SqliteStore

from ._support import FakeClock, MemoryStore
from .conftest import CACHE, TOPIC, WALL_START, MakeService


def test_page_clock_derives_pages_from_wall_clock_microseconds() -> None:
    # Arrange
    pages = PageClock(0, FakeClock(1_700_000_000.25))

    # Act
    page = pages.next_page()

    # Assert
    assert page == 1_700_000_000_250_000
    assert pages.last_issued == page


def test_page_clock_is_strictly_increasing_with_a_stopped_wall_clock() -> None:
    # Arrange
    pages = PageClock(0, FakeClock(WALL_START))

    # Act
    issued = [pages.next_page() for _ in range(100)]

    # Assert
    assert issued == list(range(issued[0], issued[0] + 100))


@pytest.mark.parametrize("wall", [0.0, -1.0, 1e-7], ids=["epoch", "before-epoch", "sub-microsecond"])
def test_page_clock_is_nonzero_whatever_the_wall_clock(wall: float) -> None:
    # Act
    page = PageClock(0, FakeClock(wall)).next_page()

    # Assert
    assert page == 1


def test_page_clock_issues_pages_greater_than_the_floor() -> None:
    # Arrange: the floor a previous run recorded is ahead of the wall clock.
    floor = int(WALL_START * 1_000_000) + 5_000_000
    pages = PageClock(floor, FakeClock(WALL_START))

    # Act
    page = pages.next_page()

    # Assert
    assert page == floor + 1
    assert PageClock(floor).last_issued == floor


def test_page_clock_survives_a_backwards_wall_clock() -> None:
    # Arrange
    wall = FakeClock(WALL_START)
    pages = PageClock(0, wall)
    before = pages.next_page()

    # Act
    wall.advance(-3600.0)
    after = pages.next_page()

    # Assert
    assert after == before + 1


@given(
    floor=st.integers(0, 2**62),
    walls=st.lists(st.floats(-1e9, 4e9, allow_nan=False), min_size=1, max_size=50),
)
def test_page_clock_pages_always_grow_past_the_floor(floor: int, walls: list[float]) -> None:
    # Arrange
    wall = FakeClock(walls[0])
    pages = PageClock(floor, wall)
    issued = []

    # Act
    for now in walls:
        wall.now = now
        issued.append(pages.next_page())

    # Assert
    assert all(page > 0 for page in issued)
    assert issued[0] > floor
    assert all(a < b for a, b in itertools.pairwise(issued))
    assert pages.last_issued == issued[-1]


async def test_service_restart_issues_greater_pages_after_backwards_wall_clock(
    make_service: MakeService, store: MemoryStore, wall_clock: FakeClock
) -> None:
    # Arrange
    first_run = await make_service()
    before = await first_run.publish(CACHE, TOPIC, "x")
    await first_run.close()

    # Act
    wall_clock.advance(-86_400.0)
    second_run = await make_service()
    after = await second_run.publish(CACHE, TOPIC, "y")

    # Assert
    assert store.page_floor > after.sequence_page > before.sequence_page
    assert after.sequence_number == 1


async def test_service_crash_without_close_still_issues_greater_pages(
    make_service: MakeService, store: MemoryStore, wall_clock: FakeClock
) -> None:
    # Arrange: pages issued after the last save, then no close() (a crash), then a clock that went backwards.
    first_run = await make_service()
    wall_clock.advance(30.0)
    before = await first_run.publish(CACHE, TOPIC, "x")

    # Act
    wall_clock.advance(-86_400.0)
    second_run = await make_service()
    after = await second_run.publish(CACHE, TOPIC, "y")

    # Assert
    assert after.sequence_page > before.sequence_page


async def test_service_restart_on_sqlite_store_issues_greater_pages(
    make_service: MakeService, wall_clock: FakeClock, tmp_path: Path
) -> None:
    # Arrange
    store = await SqliteStore.open(tmp_path)
    first_run = await make_service(store=store)
    before = await first_run.publish(CACHE, TOPIC, "x")
    await first_run.close()
    await store.close()

    # Act
    wall_clock.advance(-86_400.0)
    store = await SqliteStore.open(tmp_path)
    try:
        second_run = await make_service(store=store, caches=())
        after = await second_run.publish(CACHE, TOPIC, "y")
        await second_run.close()
        floor = await store.load_page_floor()
    finally:
        await store.close()

    # Assert
    assert after.sequence_page > before.sequence_page
    assert floor == after.sequence_page  # a clean close records exactly the last page issued


async def test_clean_restarts_do_not_drift_pages_ahead_of_the_clock(
    make_service: MakeService, wall_clock: FakeClock
) -> None:
    # Each clean close records the exact last page, so restarts keep pages at the wall clock's microseconds.
    pages = []
    for _ in range(4):
        service = await make_service()
        pages.append((await service.publish(CACHE, TOPIC, "x")).sequence_page)
        await service.close()
        wall_clock.advance(1.0)

    assert pages == sorted(set(pages))
    assert pages[-1] - pages[0] == pytest.approx(3_000_000, abs=10)
