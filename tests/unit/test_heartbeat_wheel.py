"""HeartbeatWheel: the ticker finds the parked cursors due a heartbeat without looking at the others."""

from __future__ import annotations

import pytest

from tidings.server.core import ANONYMOUS, Unavailable
from tidings.server.core._cursor import TopicCursor
from tidings.server.core._heartbeats import BUCKETS_PER_INTERVAL, HeartbeatWheel, Link
from tidings.server.core._topics import CacheState, Cursor, TopicInstance

from ._support import FakeClock

INTERVAL = 10.0


class ParkedCursor:
    """A parked cursor whose writer takes every heartbeat (or none), counting how often the wheel looked at it."""

    def __init__(self, topic: TopicInstance, clock: FakeClock, *, writable: bool = True) -> None:
        self._topic = topic
        self._clock = clock
        self._last_sent = clock()
        self.writable = writable
        self.heartbeat_next: Link | None = None
        self.heartbeat_prev: Link | None = None
        self.looked_at = 0
        self.heartbeats = 0
        self.woken_for_heartbeat = 0
        self.waiter = None

    @property
    def last_sent(self) -> float:
        self.looked_at += 1
        return self._last_sent

    @last_sent.setter
    def last_sent(self, value: float) -> None:
        self._last_sent = value

    def heartbeat_from_ticker(self, now: float) -> bool:
        if not self.writable:
            return False
        self.heartbeats += 1
        self._last_sent = self._clock()
        return True

    @property
    def parked(self) -> bool:
        return self in self._topic.waiting  # type: ignore[comparison-overlap]

    def wake_for_heartbeat(self) -> None:
        del self._topic.waiting[self]  # type: ignore[arg-type]
        self.woken_for_heartbeat += 1


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_000.0)


@pytest.fixture
def wheel() -> HeartbeatWheel:
    return HeartbeatWheel(INTERVAL)


@pytest.fixture
def topic(clock: FakeClock, wheel: HeartbeatWheel) -> TopicInstance:
    released: list[Cursor] = []
    return TopicInstance(CacheState("cache", None), "topic", clock, released.append, wheel)


def _park(topic: TopicInstance, cursor: ParkedCursor) -> ParkedCursor:
    topic.park(cursor)  # type: ignore[arg-type]
    return cursor


def test_heartbeat_wheel_looks_only_at_the_due_cursors(
    clock: FakeClock, wheel: HeartbeatWheel, topic: TopicInstance
) -> None:
    # Arrange: 1,000 cursors parked one every 10 ms over 10 s.
    cursors = []
    for _ in range(1_000):
        cursors.append(_park(topic, ParkedCursor(topic, clock)))
        clock.advance(0.01)
    for cursor in cursors:
        cursor.looked_at = 0
    now = cursors[0].last_sent + INTERVAL + 1.0  # the first ~100 are due

    # Act
    sent = wheel.tick(now)

    # Assert: the due ones got theirs; of the others, only those of the slice holding `now` were looked at.
    due = [cursor for cursor in cursors if now - cursor._last_sent >= INTERVAL or cursor.heartbeats]
    assert sent == len(due) == sum(cursor.heartbeats for cursor in cursors)
    looked_at_not_due = [cursor for cursor in cursors if cursor.looked_at and not cursor.heartbeats]
    assert len(looked_at_not_due) <= len(cursors) / BUCKETS_PER_INTERVAL + 1
    assert len(wheel) == len(cursors)  # every one is still parked, scheduled for its next heartbeat


def test_heartbeat_wheel_sends_nothing_early_to_a_cursor_whose_last_sent_moved(
    clock: FakeClock, wheel: HeartbeatWheel, topic: TopicInstance
) -> None:
    # Arrange: a delivery 5 s after it parked (the publish writes to a parked cursor without moving it).
    cursor = _park(topic, ParkedCursor(topic, clock))
    cursor.last_sent = clock.advance(5.0)

    # Act: ticks at its first due time, just before its new one (more than a slice), and at it.
    sent, looked_at = [], []
    for step in (5.0, 4.95, 0.05):
        before = cursor.looked_at
        sent.append(wheel.tick(clock.advance(step)))
        looked_at.append(cursor.looked_at > before)

    # Assert: nothing early; looked at when its first slot came (then put in its new one), and at its due time.
    assert sent == [0, 0, 1]
    assert looked_at == [True, False, True]
    assert cursor.heartbeats == 1


def test_heartbeat_wheel_sends_at_the_same_tick_as_a_scan(
    clock: FakeClock, wheel: HeartbeatWheel, topic: TopicInstance
) -> None:
    # Arrange
    cursor = _park(topic, ParkedCursor(topic, clock))

    # Act: a tick every 0.3 s for 25 s.
    ticks = [clock.advance(0.3) for _ in range(84)]
    clock.now = 1_000.0
    sent_at = [now for now in ticks if wheel.tick(clock.advance(now - clock.now))]

    # Assert: at the ticks a scan of `now - last_sent >= interval` picks.
    expected, last_sent = [], 1_000.0
    for now in ticks:
        if now - last_sent >= INTERVAL:
            expected.append(now)
            last_sent = now
    assert sent_at == expected
    assert len(expected) == 2
    assert cursor.heartbeats == 2


def test_heartbeat_wheel_wakes_a_cursor_whose_writer_cannot_take_it_and_drops_it(
    clock: FakeClock, wheel: HeartbeatWheel, topic: TopicInstance
) -> None:
    # Arrange
    cursor = _park(topic, ParkedCursor(topic, clock, writable=False))

    # Act
    sent = wheel.tick(clock.advance(INTERVAL))

    # Assert: woken to send it; no longer waiting nor scheduled, until it parks again.
    assert sent == 1
    assert cursor.woken_for_heartbeat == 1
    assert not topic.waiting
    assert (len(wheel), cursor.heartbeat_prev, cursor.heartbeat_next) == (0, None, None)


def test_heartbeat_wheel_drops_a_cursor_woken_meanwhile_and_schedules_it_once_when_it_parks_again(
    clock: FakeClock, wheel: HeartbeatWheel, topic: TopicInstance
) -> None:
    # Arrange: woken by a publish (it leaves the waiting ones), parked again, woken again.
    cursor = _park(topic, ParkedCursor(topic, clock))
    topic.wake_all()
    _park(topic, cursor)
    topic.wake_all()

    # Act
    sent = wheel.tick(clock.advance(INTERVAL))

    # Assert
    assert sent == 0
    assert (len(wheel), cursor.heartbeat_prev, cursor.heartbeat_next) == (0, None, None)
    _park(topic, cursor)
    assert len(wheel) == 1


async def test_heartbeat_wheel_forgets_a_released_cursor(
    clock: FakeClock, wheel: HeartbeatWheel, topic: TopicInstance
) -> None:
    # Arrange: three subscriptions parked in one bucket.
    cursors = [TopicCursor(topic, 1, None, clock(), ANONYMOUS) for _ in range(3)]
    waiters = []
    for cursor in cursors:
        topic.add(cursor)
        waiters.append(cursor.wait())
    assert len(wheel) == 3

    # Act: the middle one is ended, then closed.
    cursors[1].end(Unavailable("ended"))
    cursors[1].close()
    after_one = len(wheel)
    sent = wheel.tick(clock.advance(INTERVAL))  # the others are woken to send theirs (no direct delivery)

    # Assert: it left the wheel at once; the others got their heartbeat, and left it with the wake.
    assert (after_one, sent, len(wheel)) == (2, 2, 0)
    assert all(waiter.done() for waiter in waiters)
    assert not any(cursor.parked for cursor in cursors)
    for cursor in cursors:
        cursor.close()


async def test_heartbeat_wheel_forgets_cursors_closed_while_parked(
    clock: FakeClock, wheel: HeartbeatWheel, topic: TopicInstance
) -> None:
    # Arrange
    cursors = [TopicCursor(topic, 1, None, clock(), ANONYMOUS) for _ in range(100)]
    for cursor in cursors:
        topic.add(cursor)
        cursor.wait()
        clock.advance(0.1)

    # Act
    for cursor in cursors:
        cursor.close()

    # Assert: nothing of them is left, nor is a heartbeat sent.
    assert len(wheel) == 0
    assert wheel.tick(clock.advance(2 * INTERVAL)) == 0
