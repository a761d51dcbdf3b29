"""`Subscription.sink`: new messages pushed to the transport from the publish, without waking the reader.

A transport that can write without waiting (the h2 gRPC transport) gives a subscription a sink. A publish then
hands each waiting subscription its new messages at once; the reader stays parked. Whenever the sink refuses (its
window or socket is full), or there is something only the reader delivers (a discontinuity, the end), the reader
is woken and delivers as before: nothing is lost, duplicated or reordered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from tidings.server.core import READ_BATCH, CacheNotFound, Discontinuity, Message, Subscription, TopicsService

from .conftest import CACHE, TOPIC, MakeService
from .test_service import SMALL_RETENTION


class RecordingSink:
    """A sink that takes batches while ``open`` and records them."""

    def __init__(self, *, open_batches: int | None = None) -> None:
        self.batches: list[list[Message]] = []
        self.open_batches = open_batches  # None: takes everything; n: takes n batches, then refuses

    def __call__(self, messages: Sequence[Message]) -> bool:
        if self.open_batches is not None:
            if self.open_batches == 0:
                return False
            self.open_batches -= 1
        self.batches.append(list(messages))
        return True

    @property
    def numbers(self) -> list[int]:
        return [message.sequence_number for batch in self.batches for message in batch]


async def _parked(subscription: Subscription, sink: RecordingSink) -> asyncio.Future[None]:
    """Give ``subscription`` its sink and park its reader, as a transport's loop does: poll, then wait."""
    subscription.sink = sink
    assert subscription.poll() is None
    return subscription.wait()


async def test_publish_pushes_to_the_sink_and_leaves_the_reader_parked(service: TopicsService) -> None:
    # Arrange
    subscription = await service.subscribe(CACHE, TOPIC)
    sink = RecordingSink()
    waiter = await _parked(subscription, sink)

    # Act
    first = await service.publish(CACHE, TOPIC, "a")
    second = await service.publish(CACHE, TOPIC, "b")

    # Assert: both went to the sink during their publish; the reader was never woken and has nothing left.
    assert sink.batches == [[first], [second]]
    assert not waiter.done()
    assert subscription.poll() is None
    subscription.close()


async def test_a_refusing_sink_wakes_the_reader_with_the_messages(service: TopicsService) -> None:
    # Arrange
    subscription = await service.subscribe(CACHE, TOPIC)
    sink = RecordingSink(open_batches=1)
    waiter = await _parked(subscription, sink)
    first = await service.publish(CACHE, TOPIC, "a")

    # Act
    second = await service.publish(CACHE, TOPIC, "b")

    # Assert: the first went to the sink; the second, refused, is the reader's, once.
    assert sink.batches == [[first]]
    assert waiter.done()
    assert subscription.poll() == [second]
    assert subscription.poll() is None
    subscription.close()


async def test_a_sink_refusing_midway_leaves_the_rest_to_the_reader_in_order(service: TopicsService) -> None:
    # Arrange: more than one batch is new when the parked subscription is told (it parked without polling them).
    subscription = await service.subscribe(CACHE, TOPIC)
    published = [await service.publish(CACHE, TOPIC, f"v{i}") for i in range(READ_BATCH + 5)]
    subscription.sink = sink = RecordingSink(open_batches=1)
    waiter = subscription.wait()

    # Act
    subscription._topic.messages_arrived()

    # Assert: the sink took the first batch, the reader is woken for the rest.
    assert sink.batches == [published[:READ_BATCH]]
    assert waiter.done()
    assert subscription.poll() == published[READ_BATCH:]
    assert subscription.poll() is None
    subscription.close()


async def test_a_subscription_behind_retention_gets_its_discontinuity_from_the_reader(
    make_service: MakeService,
) -> None:
    # Arrange: a subscription fell behind retention, then parked with a sink without reading (as one does that
    # parks in the same loop turn as the publishes).
    service = await make_service(SMALL_RETENTION)
    subscription = await service.subscribe(CACHE, TOPIC, 0, 0)
    published = [await service.publish(CACHE, TOPIC, f"v{i}") for i in range(5)]  # retains 3..5
    subscription.sink = sink = RecordingSink()
    waiter = subscription.wait()

    # Act
    subscription._topic.messages_arrived()

    # Assert: nothing pushed; the reader delivers the discontinuity, then what is retained, then goes live.
    assert sink.batches == []
    assert waiter.done()
    assert subscription.poll() == [Discontinuity(0, 2, published[0].sequence_page), *published[2:]]
    waiter = await _parked(subscription, sink)
    live = await service.publish(CACHE, TOPIC, "live")
    assert sink.batches == [[live]]
    assert not waiter.done()
    subscription.close()


async def test_a_page_change_is_delivered_by_the_reader_before_newer_messages(service: TopicsService) -> None:
    # Arrange: the page changed, and the subscription parked again before its reader took the discontinuity.
    subscription = await service.subscribe(CACHE, TOPIC)
    sink = RecordingSink()
    first_waiter = await _parked(subscription, sink)
    subscription._topic.page_changed()
    waiter = subscription.wait()

    # Act
    message = await service.publish(CACHE, TOPIC, "after the change")

    # Assert: the page change woke the reader; the publish was not pushed past the discontinuity.
    assert first_waiter.done()
    assert sink.batches == []
    assert waiter.done()
    events = subscription.poll()
    assert events is not None
    assert len(events) == 1
    assert isinstance(events[0], Discontinuity)
    assert subscription.poll() == [message]
    subscription.close()


async def test_deleting_the_cache_ends_a_parked_subscription_through_its_reader(service: TopicsService) -> None:
    # Arrange: the cache is deleted, and the subscription parked again before its reader saw the end.
    subscription = await service.subscribe(CACHE, TOPIC)
    sink = RecordingSink()
    first_waiter = await _parked(subscription, sink)
    topic = subscription._topic
    await service.delete_cache(CACHE)
    waiter = subscription.wait()

    # Act
    topic.messages_arrived()

    # Assert
    assert first_waiter.done()
    assert waiter.done()
    assert sink.batches == []
    with pytest.raises(CacheNotFound):
        subscription.poll()
    subscription.close()
