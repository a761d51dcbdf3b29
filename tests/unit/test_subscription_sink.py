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


async def test_a_discontinuity_goes_through_the_reader(make_service: MakeService) -> None:
    # Arrange: a subscription that fell behind retention before it parked with a sink.
    service = await make_service(SMALL_RETENTION)
    subscription = await service.subscribe(CACHE, TOPIC, 0, 0)
    subscription.sink = sink = RecordingSink()
    for i in range(5):
        await service.publish(CACHE, TOPIC, f"v{i}")  # retains 3..5; not parked: nothing pushed
    events = subscription.poll()
    assert events is not None
    assert isinstance(events[0], Discontinuity)
    waiter = subscription.wait()

    # Act
    live = await service.publish(CACHE, TOPIC, "live")

    # Assert: caught up again, so the live message is pushed.
    assert sink.batches == [[live]]
    assert not waiter.done()
    subscription.close()


async def test_a_page_change_wakes_the_reader_with_the_discontinuity(service: TopicsService) -> None:
    # Arrange
    subscription = await service.subscribe(CACHE, TOPIC)
    sink = RecordingSink()
    waiter = await _parked(subscription, sink)
    topic = subscription._topic

    # Act
    topic.page_changed()

    # Assert
    assert waiter.done()
    assert sink.batches == []
    events = subscription.poll()
    assert events is not None
    assert isinstance(events[0], Discontinuity)
    subscription.close()


async def test_deleting_the_cache_ends_a_parked_subscription_through_its_reader(service: TopicsService) -> None:
    # Arrange
    subscription = await service.subscribe(CACHE, TOPIC)
    sink = RecordingSink()
    waiter = await _parked(subscription, sink)

    # Act
    await service.delete_cache(CACHE)

    # Assert
    assert waiter.done()
    with pytest.raises(CacheNotFound):
        subscription.poll()
    assert sink.batches == []
    subscription.close()
