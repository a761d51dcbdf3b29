"""`HeartbeatWheel`: which parked subscriptions are due a heartbeat, found without looking at the others.

A stream that sent nothing for the heartbeat interval gets a heartbeat (README, ``--heartbeat-interval``), and
one ticker serves every stream. The ticker used to scan every waiting subscription of every topic each tick to
find the due ones: with 100,000 idle streams, 100,000 checks a second for 10,000 heartbeats (29% of the idle
server's CPU).

Here a parked cursor sits in a bucket keyed by the slice of time in which its heartbeat falls due (its
``last_sent`` plus the interval, in slices of 1/`BUCKETS_PER_INTERVAL` of the interval), and a tick takes only
the buckets whose slice has begun. Why buckets and not each topic's cursors ordered by ``last_sent``: a delivery
moves ``last_sent`` (the publish writes to parked cursors directly), and keeping an order would cost the publish
a move per subscriber; a bucket is left as it is (nothing on the delivery path) and a cursor found not due yet
when its bucket comes is put in the bucket of its new due time. So the ticker looks at a cursor once per
heartbeat it sends, once per interval while deliveries keep it busy, and the not-yet-due part of the bucket
holding ``now`` (narrow: at most 1/`BUCKETS_PER_INTERVAL` of the parked cursors); and a heartbeat goes out at
the same tick as with the scan (the due test is the same, ``now - last_sent >= interval``, less `SLACK`).

Memory: a bucket is a ring of its cursors linked through two slots of each cursor (`Link`), so a subscription
costs the wheel those two slots and nothing else, and leaves its bucket in O(1) when it is released. Measured
(tracemalloc, 100,000 parked subscriptions): 16 bytes per subscription; a dict per bucket, with the bucket's key
on each cursor, cost 88 (dict growth, and an int per cursor), nearly 2% of the 5 KiB a subscription may cost
(issue 20). A cursor that stopped waiting (woken, or ended) is dropped when its bucket comes, and put back by its
next `TopicInstance.park`.
"""

from __future__ import annotations

import math
from typing import Final, Protocol, cast

# Slices per interval: the bucket holding ``now`` is checked whole at each tick, its cursors not yet due with it.
BUCKETS_PER_INTERVAL: Final = 256
# A heartbeat is due this much before the interval is whole: the ticker's times are on a beat (one interval apart
# in exact arithmetic), and floating point must not make one of them an ulp short of the interval.
SLACK: Final = 1e-3


class Link(Protocol):
    """A place in a bucket's ring: a cursor, or the bucket's own head. None both ways: in no bucket."""

    heartbeat_next: Link | None
    heartbeat_prev: Link | None


class ParkedCursor(Link, Protocol):
    """What the wheel asks of a cursor (`_topics.Cursor`, whose module imports this one)."""

    last_sent: float

    @property
    def parked(self) -> bool:
        """Whether it waits among its topic's waiting cursors."""
        ...

    def heartbeat_from_ticker(self, now: float) -> bool:
        """Write a heartbeat from the ticker; False when the reader must be woken to send it."""
        ...

    def wake_for_heartbeat(self) -> None:
        """Stop waiting, and wake the reader to send a heartbeat."""
        ...


class _Bucket:
    """The head of a ring of cursors (empty: it links to itself)."""

    __slots__ = ("heartbeat_next", "heartbeat_prev")

    def __init__(self) -> None:
        self.heartbeat_next: Link | None = self
        self.heartbeat_prev: Link | None = self


class HeartbeatWheel:
    """The parked cursors by the slice of time their heartbeat falls due in."""

    __slots__ = ("_buckets", "_per_second", "interval")

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._per_second = BUCKETS_PER_INTERVAL / interval  # slices per second
        self._buckets: dict[int, _Bucket] = {}

    def __len__(self) -> int:
        """How many cursors are scheduled (walks them all: for tests)."""
        count = 0
        for bucket in self._buckets.values():
            link = bucket.heartbeat_next
            while link is not bucket and link is not None:
                count += 1
                link = link.heartbeat_next
        return count

    def schedule(self, cursor: ParkedCursor) -> None:
        """Put ``cursor`` (in no bucket) in the bucket of its heartbeat's due time."""
        slot = math.floor((cursor.last_sent + self.interval - SLACK) * self._per_second)
        bucket = self._buckets.get(slot)
        if bucket is None:
            bucket = self._buckets[slot] = _Bucket()
        last = bucket.heartbeat_prev
        assert last is not None
        cursor.heartbeat_prev = last
        cursor.heartbeat_next = bucket
        last.heartbeat_next = bucket.heartbeat_prev = cursor

    @staticmethod
    def forget(cursor: ParkedCursor) -> None:
        """Take ``cursor`` out of its bucket, if it is in one (it was released). An emptied bucket stays until its
        slice comes (there are at most `BUCKETS_PER_INTERVAL` and a few)."""
        prev, after = cursor.heartbeat_prev, cursor.heartbeat_next
        if prev is None or after is None:
            return
        prev.heartbeat_next = after
        after.heartbeat_prev = prev
        cursor.heartbeat_next = cursor.heartbeat_prev = None

    def tick(self, now: float) -> int:
        """Send a heartbeat to every parked cursor that sent nothing for the interval; returns how many.

        A cursor whose writer takes it now gets it written from here (`ParkedCursor.heartbeat_from_ticker`: no
        task woken); any other leaves its topic's waiting cursors and is woken to send it."""
        current = math.floor(now * self._per_second)
        buckets = self._buckets
        interval = self.interval - SLACK
        schedule = self.schedule
        sent = 0
        for slot in [slot for slot in buckets if slot <= current]:
            bucket = buckets.pop(slot)
            link = bucket.heartbeat_next
            while link is not bucket and link is not None:
                cursor = cast(ParkedCursor, link)
                link = cursor.heartbeat_next
                cursor.heartbeat_next = cursor.heartbeat_prev = None  # the bucket is gone with all its links
                if not cursor.parked:
                    continue  # woken or ended meanwhile: scheduled again when it parks
                if now - cursor.last_sent < interval:
                    schedule(cursor)  # a delivery moved its due time
                    continue
                sent += 1
                if cursor.heartbeat_from_ticker(now):
                    schedule(cursor)
                else:
                    cursor.wake_for_heartbeat()
        return sent

    def clear(self) -> None:
        """Forget every cursor (the service is closing)."""
        for bucket in self._buckets.values():
            link = bucket.heartbeat_next
            while link is not bucket and link is not None:
                cursor = link
                link = cursor.heartbeat_next
                cursor.heartbeat_next = cursor.heartbeat_prev = None
        self._buckets.clear()
