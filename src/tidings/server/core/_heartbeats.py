"""`HeartbeatWheel`: which parked subscriptions are due a heartbeat, found without looking at the others.

PROTOCOL.md: a stream that sent nothing for the heartbeat interval sends a heartbeat, and one ticker serves every
stream. The ticker used to scan every waiting subscription of every topic each tick to find the due ones: with
100,000 idle streams that was 100,000 checks a second for 10,000 heartbeats (29% of the idle server's CPU).

Here a parked cursor sits in a bucket keyed by the slice of time in which its heartbeat falls due (its
``last_sent`` plus the interval, in slices of 1/`BUCKETS_PER_INTERVAL` of the interval), and a tick takes only
the buckets whose slice has begun. Why buckets and not each topic's cursors ordered by ``last_sent``: a delivery
moves ``last_sent`` (the publish writes to parked cursors directly), and keeping an order would cost the publish
a move per subscriber; a bucket is left as it is (nothing on the delivery path) and a cursor found not due yet
when its bucket comes is put in the bucket of its new due time. So the ticker looks at a cursor once per
heartbeat it sends, once per interval while deliveries keep it busy, and the not-yet-due part of the bucket
holding ``now`` (narrow: at most 1/`BUCKETS_PER_INTERVAL` of the parked cursors); and a heartbeat goes out at
the same tick as with the scan (the due test is the same, ``now - last_sent >= interval``).

Memory: a cursor is in at most one bucket (its `ParkedCursor.heartbeat_slot` says which, so it leaves in O(1) when it
is released), one dict entry and one slot per subscription, no object of its own. A cursor that stopped waiting
(woken, or ended) is dropped when its bucket comes, and put back by its next `TopicInstance.park`.
"""

from __future__ import annotations

import math
from typing import Any, Final, Protocol

# Slices per interval: the bucket holding ``now`` is checked whole at each tick, its cursors not yet due with it.
BUCKETS_PER_INTERVAL: Final = 256


class ParkedCursor(Protocol):
    """What the wheel asks of a cursor (`_topics.Cursor`, whose module imports this one)."""

    last_sent: float
    heartbeat_slot: int | None  # its bucket, while it is in one: set by the wheel only

    def heartbeat_from_ticker(self) -> bool:
        """Write a heartbeat from the ticker; False when the reader must be woken to send it."""
        ...

    def wake(self, heartbeat: bool = False) -> None:
        """Wake the reader (``heartbeat``: with a heartbeat when it has nothing else)."""
        ...


class Parking(Protocol):
    """What the wheel asks of a topic instance (`_topics.TopicInstance`): its waiting cursors."""

    @property
    def waiting(self) -> dict[Any, None]:
        """The cursors parked on it now."""
        ...


class HeartbeatWheel:
    """The parked cursors by the slice of time their heartbeat falls due in, each with its topic instance."""

    __slots__ = ("_buckets", "_per_second", "interval")

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._per_second = BUCKETS_PER_INTERVAL / interval  # slices per second
        self._buckets: dict[int, dict[ParkedCursor, Parking]] = {}

    def __len__(self) -> int:
        """How many cursors are scheduled."""
        return sum(map(len, self._buckets.values()))

    def schedule(self, cursor: ParkedCursor, topic: Parking) -> None:
        """Put ``cursor`` (of ``topic``, not scheduled yet) in the bucket of its heartbeat's due time."""
        slot = math.floor((cursor.last_sent + self.interval) * self._per_second)
        bucket = self._buckets.get(slot)
        if bucket is None:
            bucket = self._buckets[slot] = {}
        bucket[cursor] = topic
        cursor.heartbeat_slot = slot

    def forget(self, cursor: ParkedCursor) -> None:
        """Take ``cursor`` out of its bucket, if it is in one (it was released)."""
        slot = cursor.heartbeat_slot
        if slot is None:
            return
        cursor.heartbeat_slot = None
        bucket = self._buckets.get(slot)
        if bucket is not None and bucket.pop(cursor, None) is not None and not bucket:
            del self._buckets[slot]

    def tick(self, now: float) -> int:
        """Send a heartbeat to every parked cursor that sent nothing for the interval; returns how many.

        A cursor whose writer takes it now gets it written from here (`ParkedCursor.heartbeat_from_ticker`: no task
        woken); any other leaves its topic's waiting cursors and is woken to send it."""
        current = math.floor(now * self._per_second)
        buckets = self._buckets
        interval = self.interval
        schedule = self.schedule
        sent = 0
        for slot in [slot for slot in buckets if slot <= current]:
            for cursor, topic in buckets.pop(slot).items():
                cursor.heartbeat_slot = None
                waiting = topic.waiting
                if cursor not in waiting:
                    continue  # woken or ended meanwhile: scheduled again when it parks
                if now - cursor.last_sent < interval:
                    schedule(cursor, topic)  # a delivery moved its due time
                    continue
                sent += 1
                if cursor.heartbeat_from_ticker():
                    schedule(cursor, topic)
                else:
                    del waiting[cursor]
                    cursor.wake(heartbeat=True)
        return sent

    def clear(self) -> None:
        """Forget every cursor (the service is closing)."""
        for bucket in self._buckets.values():
            for cursor in bucket:
                cursor.heartbeat_slot = None
        self._buckets.clear()
