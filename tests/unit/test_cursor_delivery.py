"""`TopicCursor` delivering to a transport's writer: the reader loop, and the push path from the publish.

A cursor whose writer has written a batch without waiting gets new messages from the publish itself while it is
parked (`TopicCursor.deliver_from_publish`); the reader stays parked. Whenever the writer refuses (its window or
socket is full), or there is something only the reader delivers (a discontinuity, the end), the reader is woken
and delivers as before: nothing is lost, duplicated or reordered.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import pytest

from tidings.server.core import (
    HEARTBEAT,
    READ_BATCH,
    CacheNotFound,
    Discontinuity,
    Encoder,
    Event,
    Message,
    Position,
    TopicCursor,
    TopicsService,
    TransportStats,
)
from tidings.server.core._delivery import Delivery

from ._support import FakeClock
from .conftest import CACHE, TOPIC, MakeService
from .test_service import SMALL_RETENTION


def _as_is(event: Event) -> Event:
    return event


EVENTS: Encoder[Event] = Encoder(_as_is, _as_is, HEARTBEAT, preamble=HEARTBEAT)


class RecordingWriter:
    """A writer that takes batches now while ``open`` and records them; `write_all` records what waited."""

    def __init__(self, *, open_batches: int | None = None) -> None:
        self.batches: list[list[Event]] = []  # written without waiting
        self.waited: list[list[Event]] = []  # written by `write_all`
        self.open_batches = open_batches  # None: takes everything; n: takes n batches, then refuses

    def try_write(self, chunks: Sequence[Event]) -> bool:
        if self.open_batches is not None:
            if self.open_batches == 0:
                return False
            self.open_batches -= 1
        self.batches.append(list(chunks))
        return True

    async def write_all(self, chunks: Sequence[Event]) -> None:
        self.waited.append(list(chunks))

    @property
    def numbers(self) -> list[int]:
        return [event.sequence_number for batch in self.batches for event in batch if isinstance(event, Message)]


def _parked(subscription: TopicCursor, writer: RecordingWriter) -> asyncio.Future[None]:
    """Give ``subscription`` its direct delivery and park its reader, as `TopicCursor.deliver` does once its
    writer wrote without waiting: take what is ready, then wait."""
    subscription.direct = Delivery(writer, EVENTS, None, lambda: 0.0)
    assert subscription.take_ready() is None
    return subscription.wait()


async def test_publish_writes_to_the_writer_and_leaves_the_reader_parked(service: TopicsService) -> None:
    # Arrange
    subscription = await service.subscribe(CACHE, TOPIC)
    writer = RecordingWriter()
    waiter = _parked(subscription, writer)

    # Act
    first = await service.publish(CACHE, TOPIC, "a")
    second = await service.publish(CACHE, TOPIC, "b")

    # Assert: both went to the writer during their publish; the reader was never woken and has nothing left.
    assert writer.batches == [[first], [second]]
    assert not waiter.done()
    assert subscription.take_ready() is None
    subscription.close()


async def test_a_refusing_writer_wakes_the_reader_with_the_messages(service: TopicsService) -> None:
    # Arrange
    subscription = await service.subscribe(CACHE, TOPIC)
    writer = RecordingWriter(open_batches=1)
    waiter = _parked(subscription, writer)
    first = await service.publish(CACHE, TOPIC, "a")

    # Act
    second = await service.publish(CACHE, TOPIC, "b")

    # Assert: the first went to the writer; the second, refused, is the reader's, once.
    assert writer.batches == [[first]]
    assert waiter.done()
    assert subscription.take_ready() == [second]
    assert subscription.take_ready() is None
    subscription.close()


async def test_a_writer_refusing_midway_leaves_the_rest_to_the_reader_in_order(service: TopicsService) -> None:
    # Arrange: more than one batch is new when the parked cursor is told (it parked without taking them).
    subscription = await service.subscribe(CACHE, TOPIC)
    published = [await service.publish(CACHE, TOPIC, f"v{i}") for i in range(READ_BATCH + 5)]
    writer = RecordingWriter(open_batches=1)
    subscription.direct = Delivery(writer, EVENTS, None, lambda: 0.0)
    waiter = subscription.wait()

    # Act
    subscription._topic.messages_arrived()

    # Assert: the writer took the first batch, the reader is woken for the rest.
    assert writer.batches == [published[:READ_BATCH]]
    assert waiter.done()
    assert subscription.take_ready() == published[READ_BATCH:]
    assert subscription.take_ready() is None
    subscription.close()


async def test_a_cursor_behind_retention_gets_its_discontinuity_from_the_reader(make_service: MakeService) -> None:
    # Arrange: a cursor fell behind retention, then parked with a direct delivery without reading (as one does
    # that parks in the same loop turn as the publishes).
    service = await make_service(SMALL_RETENTION)
    subscription = await service.subscribe(CACHE, TOPIC, Position(0, 0))
    published = [await service.publish(CACHE, TOPIC, f"v{i}") for i in range(5)]  # retains 3..5
    writer = RecordingWriter()
    subscription.direct = Delivery(writer, EVENTS, None, lambda: 0.0)
    waiter = subscription.wait()

    # Act
    subscription._topic.messages_arrived()

    # Assert: nothing written from the publish; the reader delivers the discontinuity, then what is retained,
    # then goes live.
    assert writer.batches == []
    assert waiter.done()
    assert subscription.take_ready() == [Discontinuity(0, 2, published[0].sequence_page), *published[2:]]
    waiter = _parked(subscription, writer)
    live = await service.publish(CACHE, TOPIC, "live")
    assert writer.batches == [[live]]
    assert not waiter.done()
    subscription.close()


async def test_a_page_change_is_delivered_by_the_reader_before_newer_messages(service: TopicsService) -> None:
    # Arrange: the page changed, and the cursor parked again before its reader took the discontinuity.
    subscription = await service.subscribe(CACHE, TOPIC)
    writer = RecordingWriter()
    first_waiter = _parked(subscription, writer)
    subscription._topic.page_changed()
    waiter = subscription.wait()

    # Act
    message = await service.publish(CACHE, TOPIC, "after the change")

    # Assert: the page change woke the reader; the publish was not written past the discontinuity.
    assert first_waiter.done()
    assert writer.batches == []
    assert waiter.done()
    events = subscription.take_ready()
    assert events is not None
    assert len(events) == 1
    assert isinstance(events[0], Discontinuity)
    assert subscription.take_ready() == [message]
    subscription.close()


async def test_deleting_the_cache_ends_a_parked_cursor_through_its_reader(service: TopicsService) -> None:
    # Arrange: the cache is deleted, and the cursor parked again before its reader saw the end.
    subscription = await service.subscribe(CACHE, TOPIC)
    writer = RecordingWriter()
    first_waiter = _parked(subscription, writer)
    topic = subscription._topic
    await service.delete_cache(CACHE)
    waiter = subscription.wait()

    # Act
    topic.messages_arrived()

    # Assert
    assert first_waiter.done()
    assert waiter.done()
    assert writer.batches == []
    with pytest.raises(CacheNotFound):
        subscription.take_ready()
    subscription.close()


async def _run_until_parked(
    subscription: TopicCursor, writer: RecordingWriter, stats: TransportStats
) -> asyncio.Task[None]:
    task: asyncio.Task[None] = asyncio.create_task(subscription.deliver(writer, EVENTS, stats))
    for _ in range(3):  # one loop turn each: the preamble, the retained message, then parked
        await asyncio.sleep(0)
    return task


async def test_deliver_writes_the_preamble_then_the_events_and_takes_the_push_path_once_it_wrote_directly(
    service: TopicsService,
) -> None:
    # Arrange: one retained message, so that the reader writes a batch before the cursor parks.
    retained = await service.publish(CACHE, TOPIC, "retained")
    subscription = await service.subscribe(CACHE, TOPIC)
    writer = RecordingWriter()
    stats = TransportStats()

    # Act
    task = await _run_until_parked(subscription, writer, stats)
    live = await service.publish(CACHE, TOPIC, "live")

    # Assert: the preamble (counted as a heartbeat) and the retained message were written by the reader without
    # waiting, the live one from the publish; both counted.
    assert writer.waited == []
    assert writer.batches == [[HEARTBEAT], [retained], [live]]
    assert subscription.direct is not None
    assert (stats.heartbeats, stats.deliveries) == (1, 2)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    subscription.close()


async def test_deliver_waits_to_write_what_its_writer_refuses_and_stays_on_the_reader(service: TopicsService) -> None:
    # Arrange: a writer that never writes without waiting (grpc.aio, SSE).
    subscription = await service.subscribe(CACHE, TOPIC)
    writer = RecordingWriter(open_batches=0)
    stats = TransportStats()
    task = await _run_until_parked(subscription, writer, stats)

    # Act
    live = await service.publish(CACHE, TOPIC, "live")
    await asyncio.sleep(0)

    # Assert
    assert writer.waited == [[HEARTBEAT], [live]]
    assert subscription.direct is None
    assert stats.deliveries == 1
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    subscription.close()


async def test_deliver_raises_the_error_that_ended_the_subscription(service: TopicsService) -> None:
    # Arrange
    subscription = await service.subscribe(CACHE, TOPIC)
    task = await _run_until_parked(subscription, RecordingWriter(), TransportStats())

    # Act
    await service.delete_cache(CACHE)

    # Assert
    with pytest.raises(CacheNotFound):
        await task
    subscription.close()


async def test_deliver_first_skips_heartbeats_and_writes_up_to_its_reads_in_one_batch(service: TopicsService) -> None:
    # Arrange: a heartbeat is due, and more than two reads' worth of messages arrive while it waits.
    subscription = await service.subscribe(CACHE, TOPIC)
    writer = RecordingWriter()
    stats = TransportStats()
    task = asyncio.create_task(subscription.deliver_first(writer, EVENTS, stats, reads=2))
    await asyncio.sleep(0)
    subscription.wake(heartbeat=True)
    await asyncio.sleep(0)

    # Act
    published = [await service.publish(CACHE, TOPIC, f"v{i}") for i in range(2 * READ_BATCH + 1)]
    await task

    # Assert: no heartbeat; two reads, written at once; the rest is left to the next poll.
    assert writer.batches == [published[: 2 * READ_BATCH]]
    assert stats.deliveries == 2 * READ_BATCH
    assert subscription.next_sequence_number == published[-1].sequence_number
    subscription.close()


async def test_the_ticker_writes_a_parked_cursors_heartbeat_without_waking_its_reader(
    service: TopicsService, clock: FakeClock
) -> None:
    # Arrange
    subscription = await service.subscribe(CACHE, TOPIC)
    writer = RecordingWriter()
    waiter = _parked(subscription, writer)
    clock.advance(service.heartbeat_interval)

    # Act
    sent = service.tick_heartbeats(clock())
    again = service.tick_heartbeats(clock())  # nothing due until another interval of silence

    # Assert: written from the tick itself; the reader stays parked and has nothing to send.
    assert (sent, again) == (1, 0)
    assert writer.batches == [[HEARTBEAT]]
    assert not waiter.done()
    assert subscription.take_ready() is None
    subscription.close()


async def test_a_new_idle_subscription_gets_its_first_heartbeat_from_the_ticker(
    service: TopicsService, clock: FakeClock
) -> None:
    # Arrange: nothing retained, so the reader writes only the preamble (without waiting), then parks.
    subscription = await service.subscribe(CACHE, TOPIC)
    writer = RecordingWriter()
    task: asyncio.Task[None] = asyncio.create_task(subscription.deliver(writer, EVENTS, TransportStats()))
    for _ in range(2):  # one loop turn each: the preamble, then parked
        await asyncio.sleep(0)
    waiter = subscription.waiter
    clock.advance(service.heartbeat_interval)

    # Act
    sent = service.tick_heartbeats(clock())

    # Assert: the preamble opened the push path; the heartbeat is the ticker's write, the reader stays parked.
    assert sent == 1
    assert writer.batches == [[HEARTBEAT], [HEARTBEAT]]
    assert writer.waited == []
    assert waiter is not None
    assert not waiter.done()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    subscription.close()


async def test_the_ticker_wakes_the_reader_when_the_writer_cannot_take_the_heartbeat(
    service: TopicsService, clock: FakeClock
) -> None:
    # Arrange
    subscription = await service.subscribe(CACHE, TOPIC)
    writer = RecordingWriter(open_batches=0)
    waiter = _parked(subscription, writer)
    clock.advance(service.heartbeat_interval)

    # Act
    sent = service.tick_heartbeats(clock())

    # Assert: the reader is woken and sends it, once.
    assert sent == 1
    assert writer.batches == []
    assert waiter.done()
    assert subscription.take_ready() == [HEARTBEAT]
    assert subscription.take_ready() is None
    subscription.close()


async def test_housekeeping_heartbeats_an_idle_stream_every_interval_whatever_its_ticks_wake_up_jitter(
    make_service: MakeService, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrange: ticks each second; the 10th wakes 4 ms late, the 20th 0.5 ms late (a loop's wake-up jitter: the
    # clock read at the 20th is then 9.9965 s after the one at the 10th).
    late = {10: 0.004, 20: 0.0005}
    sent_at: dict[int, int] = {}
    finished = asyncio.Event()

    async def sleep(seconds: float) -> None:
        clock.advance(seconds + late.get(len(sent_at) + 1, 0.0))
        if len(sent_at) == 21:
            finished.set()
            await asyncio.Event().wait()  # until cancelled

    service = await make_service(heartbeat_interval=10.0, sleep=sleep)
    subscription = await service.subscribe(CACHE, TOPIC)
    writer = RecordingWriter()
    _parked(subscription, writer)
    tick_heartbeats = service.tick_heartbeats

    def counted(now: float) -> int:
        sent = sent_at[len(sent_at) + 1] = tick_heartbeats(now)
        return sent

    monkeypatch.setattr(service, "tick_heartbeats", counted)

    # Act
    housekeeping = asyncio.create_task(service.run_housekeeping())
    await finished.wait()
    housekeeping.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await housekeeping

    # Assert: the ticker's heartbeats at the 10th and 20th ticks, not pushed to the 21st by the jitter.
    assert [tick for tick, sent in sent_at.items() if sent] == [10, 20]
    assert writer.batches == [[HEARTBEAT], [HEARTBEAT]]
    subscription.close()
