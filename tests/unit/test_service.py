"""TopicsService: publish, subscribe, resume and fan-out to fast and slow subscribers."""

from __future__ import annotations

import asyncio

import pytest

from tidings.server.core import (
    READ_BATCH,
    CacheNotFound,
    Discontinuity,
    InvalidArgument,
    Limits,
    Message,
    Position,
    Principal,
    TopicsService,
)

from ._support import FakeClock, MemoryStore, RecordingEngine, discontinuities, numbers, ready_events
from .conftest import CACHE, TOPIC, MakeService

SMALL_RETENTION = Limits(max_message_bytes=64, retention_messages=3, retention_bytes=1024)


async def _publish(service: TopicsService, count: int, topic: str = TOPIC) -> list[Message]:
    return [await service.publish(CACHE, topic, f"v{i}") for i in range(count)]


# --- publish ---------------------------------------------------------------------------------------


async def test_publish_numbers_messages_from_one_in_a_nonzero_page(service: TopicsService) -> None:
    # Act
    publisher = Principal(super_user=True, token_id="token-1")
    messages = [await service.publish(CACHE, TOPIC, value, publisher) for value in ("a", b"b", "c")]

    # Assert
    assert [m.sequence_number for m in messages] == [1, 2, 3]
    assert len({m.sequence_page for m in messages}) == 1
    assert messages[0].sequence_page > 0
    assert [m.value for m in messages] == ["a", b"b", "c"]
    assert {m.publisher_id for m in messages} == {"token-1"}


async def test_publish_measures_text_in_utf8_bytes(service: TopicsService) -> None:
    # Act
    message = await service.publish(CACHE, TOPIC, "é€😀")

    # Assert
    assert message.size == 2 + 3 + 4


async def test_publish_numbers_each_topic_independently_with_distinct_pages(service: TopicsService) -> None:
    # Act
    first = await service.publish(CACHE, "one", "x")
    second = await service.publish(CACHE, "two", "x")

    # Assert
    assert (first.sequence_number, second.sequence_number) == (1, 1)
    assert second.sequence_page > first.sequence_page


async def test_publish_with_no_subscribers_is_retained(service: TopicsService) -> None:
    # Arrange
    published = await _publish(service, 3)

    # Act
    with await service.subscribe(CACHE, TOPIC, Position(0, 1)) as subscription:
        events = await ready_events(subscription)

    # Assert
    assert events == published


@pytest.mark.parametrize("value", ["", b""], ids=["empty-text", "empty-bytes"])
async def test_publish_empty_value_is_invalid_argument(service: TopicsService, value: str | bytes) -> None:
    with pytest.raises(InvalidArgument, match="value"):
        await service.publish(CACHE, TOPIC, value)


async def test_publish_to_unknown_cache_is_cache_not_found(service: TopicsService) -> None:
    with pytest.raises(CacheNotFound) as raised:
        await service.publish("nope", TOPIC, "x")
    assert raised.value.cache_name == "nope"


@pytest.mark.parametrize(
    ("cache_name", "topic_name", "field"),
    [("", TOPIC, "cache_name"), (CACHE, "", "topic_name"), (CACHE, "a\nb", "topic_name"), ("c" * 256, TOPIC, "cache")],
    ids=["empty-cache", "empty-topic", "control-in-topic", "long-cache"],
)
async def test_publish_and_subscribe_reject_bad_names_naming_the_field(
    service: TopicsService, cache_name: str, topic_name: str, field: str
) -> None:
    with pytest.raises(InvalidArgument, match=field):
        await service.publish(cache_name, topic_name, "x")
    with pytest.raises(InvalidArgument, match=field):
        await service.subscribe(cache_name, topic_name)


async def test_service_not_started_refuses_topics(clock: FakeClock, wall_clock: FakeClock, store: MemoryStore) -> None:
    # Arrange
    service = TopicsService(RecordingEngine(10, 1024), store, clock=clock, wall_clock=wall_clock)

    # Act / Assert
    with pytest.raises(RuntimeError, match="start"):
        await service.publish(CACHE, TOPIC, "x")


@pytest.mark.parametrize("interval", [0.0, -1.0, float("nan")], ids=["zero", "negative", "nan"])
def test_service_rejects_invalid_heartbeat_interval(store: MemoryStore, interval: float) -> None:
    with pytest.raises(ValueError, match="heartbeat_interval"):
        TopicsService(RecordingEngine(10, 1024), store, heartbeat_interval=interval)


# --- subscribe and resume -------------------------------------------------------------------------------


async def test_subscribe_without_position_starts_with_the_latest_message(service: TopicsService) -> None:
    # Arrange
    published = await _publish(service, 2)
    subscription = await service.subscribe(CACHE, TOPIC, Position(0, 0))

    # Act
    before = await ready_events(subscription)
    later = await service.publish(CACHE, TOPIC, "later")
    after = await ready_events(subscription)

    # Assert: the newest retained message (Momento's "begin with the latest messages"), then live.
    assert before == [published[-1]]
    assert after == [later]
    assert later.sequence_number == 3
    subscription.close()


@pytest.mark.parametrize(("subscribe_latest", "expected"), [(0, []), (2, [2, 3]), (5, [1, 2, 3])])
async def test_subscribe_latest_sets_how_many_newest_messages_a_fresh_subscribe_gets(
    make_service: MakeService, subscribe_latest: int, expected: list[int]
) -> None:
    # Arrange
    service = await make_service(subscribe_latest=subscribe_latest)
    await _publish(service, 3)

    # Act
    with await service.subscribe(CACHE, TOPIC) as subscription:
        events = await ready_events(subscription)

    # Assert
    assert [event.sequence_number for event in events if isinstance(event, Message)] == expected


async def test_subscribe_latest_zero_override_is_live_only(service: TopicsService) -> None:
    # Arrange: what a webhook asks for, whatever the server's --subscribe-latest.
    await _publish(service, 2)

    # Act
    with await service.subscribe(CACHE, TOPIC, latest=0) as subscription:
        events = await ready_events(subscription)

    # Assert
    assert events == []


async def test_subscribe_without_position_on_an_empty_topic_starts_live(service: TopicsService) -> None:
    # Act
    with await service.subscribe(CACHE, TOPIC) as subscription:
        before = await ready_events(subscription)
        later = await service.publish(CACHE, TOPIC, "first")
        after = await ready_events(subscription)

    # Assert
    assert before == []
    assert after == [later]


def test_service_rejects_negative_subscribe_latest(store: MemoryStore) -> None:
    with pytest.raises(ValueError, match="subscribe_latest"):
        TopicsService(RecordingEngine(10, 1024), store, subscribe_latest=-1)


async def test_subscribe_wakes_a_waiting_subscriber_on_publish(service: TopicsService) -> None:
    # Arrange
    subscription = await service.subscribe(CACHE, TOPIC)
    waiting = asyncio.create_task(subscription.next_events())
    await asyncio.sleep(0)

    # Act
    message = await service.publish(CACHE, TOPIC, "hello")

    # Assert
    assert await waiting == [message]
    subscription.close()


async def test_subscribe_replays_from_resume_point_then_goes_live(service: TopicsService) -> None:
    # Arrange
    published = await _publish(service, 5)
    page = published[0].sequence_page
    subscription = await service.subscribe(CACHE, TOPIC, Position(page, 3))

    # Act
    replayed = await ready_events(subscription)
    live = await service.publish(CACHE, TOPIC, "live")
    after = await ready_events(subscription)

    # Assert
    assert replayed == published[2:]
    assert after == [live]
    assert subscription.sequence_page == page
    assert subscription.next_sequence_number == 7
    subscription.close()


async def test_subscribe_replays_in_batches_of_read_batch(service: TopicsService) -> None:
    # Arrange
    await _publish(service, READ_BATCH + 5)
    subscription = await service.subscribe(CACHE, TOPIC, Position(0, 1))

    # Act
    first = await subscription.next_events()
    second = await subscription.next_events()

    # Assert
    assert numbers(first) == list(range(1, READ_BATCH + 1))
    assert numbers(second) == list(range(READ_BATCH + 1, READ_BATCH + 6))
    subscription.close()


async def test_subscribe_with_nothing_missed_has_no_discontinuity(service: TopicsService) -> None:
    # Arrange: a client that read 1..3 resubscribes at 4 (the Node SDK does this every few seconds).
    published = await _publish(service, 3)
    page = published[0].sequence_page

    # Act
    with await service.subscribe(CACHE, TOPIC, Position(page, 4)) as subscription:
        before = await ready_events(subscription)
        live = await service.publish(CACHE, TOPIC, "x")
        after = await ready_events(subscription)

    # Assert
    assert before == []
    assert after == [live]


async def test_subscribe_older_than_retained_gets_discontinuity_first(make_service: MakeService) -> None:
    # Arrange
    service = await make_service(SMALL_RETENTION)
    published = await _publish(service, 6)  # retains 4..6
    page = published[0].sequence_page

    # Act
    with await service.subscribe(CACHE, TOPIC, Position(page, 2)) as subscription:
        events = await ready_events(subscription)

    # Assert
    assert events == [Discontinuity(1, 3, page), *published[3:]]


async def test_subscribe_on_stale_page_replays_the_current_page(make_service: MakeService, clock: FakeClock) -> None:
    # Arrange: a topic instance is retired and a new one (new page) has messages.
    service = await make_service()
    old = await _publish(service, 2)
    clock.advance(service.limits.topic_idle_ttl)
    await service.retire_idle_topics(clock())
    current = await _publish(service, 2)

    # Act
    with await service.subscribe(CACHE, TOPIC, Position(old[0].sequence_page, 3)) as subscription:
        events = await ready_events(subscription)

    # Assert
    assert events == [Discontinuity(2, 0, current[0].sequence_page), *current]


async def test_subscribe_from_the_future_jumps_to_the_current_position(service: TopicsService) -> None:
    # Arrange
    published = await _publish(service, 3)
    page = published[0].sequence_page

    # Act
    with await service.subscribe(CACHE, TOPIC, Position(page, 10)) as subscription:
        before = await ready_events(subscription)
        live = await service.publish(CACHE, TOPIC, "x")
        after = await ready_events(subscription)

    # Assert
    assert before == [Discontinuity(9, 3, page)]
    assert after == [live]
    assert live.sequence_number == 4


async def test_subscribe_to_unknown_cache_is_cache_not_found(service: TopicsService) -> None:
    with pytest.raises(CacheNotFound):
        await service.subscribe("nope", TOPIC)


# --- slow subscribers (rule 6) -------------------------------------------------------------------------


async def test_subscription_behind_retention_gets_discontinuity_then_oldest_retained(
    make_service: MakeService,
) -> None:
    # Arrange
    service = await make_service(SMALL_RETENTION)
    subscription = await service.subscribe(CACHE, TOPIC, Position(0, 0))
    published = await _publish(service, 6)  # retains 4..6; the subscriber read nothing
    page = published[0].sequence_page

    # Act
    events = await ready_events(subscription)
    live = await service.publish(CACHE, TOPIC, "live")
    after = await ready_events(subscription)

    # Assert
    assert events == [Discontinuity(0, 3, page), *published[3:]]
    assert after == [live]
    subscription.close()


async def test_subscription_behind_after_reading_reports_its_cursor(make_service: MakeService) -> None:
    # Arrange
    service = await make_service(SMALL_RETENTION)
    subscription = await service.subscribe(CACHE, TOPIC, Position(0, 0))
    await _publish(service, 2)
    assert numbers(await ready_events(subscription)) == [1, 2]
    published = await _publish(service, 5)  # 3..7, retains 5..7

    # Act
    events = await ready_events(subscription)

    # Assert
    assert events == [Discontinuity(2, 4, published[0].sequence_page), *published[2:]]
    subscription.close()


async def test_slow_subscription_does_not_affect_another(
    make_service: MakeService, engines: list[RecordingEngine]
) -> None:
    # Arrange
    service = await make_service(SMALL_RETENTION)
    slow = await service.subscribe(CACHE, TOPIC, Position(0, 0))
    fast = await service.subscribe(CACHE, TOPIC, Position(0, 0))
    fast_events = []

    # Act: publishers never wait; only the fast subscriber keeps up.
    for i in range(10):
        await service.publish(CACHE, TOPIC, f"v{i}")
        fast_events += await ready_events(fast)
    slow_events = await ready_events(slow)

    # Assert
    assert numbers(fast_events) == list(range(1, 11))
    assert discontinuities(fast_events) == []
    assert numbers(slow_events) == [8, 9, 10]
    assert discontinuities(slow_events) == [Discontinuity(0, 7, slow.sequence_page)]
    log = engines[0].logs[CACHE, TOPIC]
    assert log.next_sequence_number - log.first_sequence_number == SMALL_RETENTION.retention_messages
    slow.close()
    fast.close()


async def test_cancelled_next_events_leaves_no_waiting_entry(service: TopicsService) -> None:
    subscription = await service.subscribe(CACHE, TOPIC)
    waiting = asyncio.create_task(subscription.next_events())
    await asyncio.sleep(0)  # let it start waiting
    topic = subscription._topic

    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting

    assert subscription not in topic.waiting
    subscription.close()
