"""PROTOCOL.md *Sequence numbers and pages* and *Subscribe*, run over every engine (memory, Redis).

Rule 2 (N = 0) is left to the service's own tests while its definition changes (subscribe-latest).
"""

from __future__ import annotations

import pytest

from tidings.server.core import CacheNotFound, Discontinuity, Limits, Message, Position, Principal, TopicsService

from ..unit._support import discontinuities, numbers, ready_events
from .conftest import CACHE, TOPIC, Engines

SMALL = Limits(max_message_bytes=16, retention_messages=4, retention_bytes=24)


async def _publish(engines: Engines, service: TopicsService, *values: str, topic: str = TOPIC) -> list[Message]:
    published = [await service.publish(CACHE, topic, value) for value in values]
    await engines.settle(published[-1], topic)
    return published


async def test_engine_numbers_from_one_in_a_nonzero_page(engines: Engines) -> None:
    # Arrange
    service = await engines.make_service()

    # Act
    published = await _publish(engines, service, "a", "b", "c")

    # Assert
    assert [m.sequence_number for m in published] == [1, 2, 3]
    assert len({m.sequence_page for m in published}) == 1
    assert published[0].sequence_page > 0
    assert [m.value for m in published] == ["a", "b", "c"]


async def test_engine_topics_number_independently(engines: Engines) -> None:
    # Arrange
    service = await engines.make_service()

    # Act
    first = await _publish(engines, service, "a", "b", topic="one")
    second = await _publish(engines, service, "c", topic="two")

    # Assert
    assert [m.sequence_number for m in first + second] == [1, 2, 1]


async def test_engine_keeps_value_type_and_publisher_id(engines: Engines) -> None:
    # Arrange
    service = await engines.make_service()
    await service.publish(CACHE, TOPIC, "text")
    last = await service.publish(CACHE, TOPIC, b"\x00\xffbinary")

    # Act
    with await service.subscribe(CACHE, TOPIC, Position(0, 1)) as subscription:
        await engines.settle(last)
        events = await ready_events(subscription)

    # Assert
    assert [(type(e.value), e.value) for e in events if isinstance(e, Message)] == [
        (str, "text"),
        (bytes, b"\x00\xffbinary"),
    ]


async def test_engine_carries_the_publisher_id_to_replayed_and_live_deliveries(engines: Engines) -> None:
    # Arrange
    service = await engines.make_service()
    publisher = Principal(super_user=True, token_id="tok:1:é")
    await service.publish(CACHE, TOPIC, "retained:1", publisher)  # nobody follows yet: read from retention

    # Act
    with await service.subscribe(CACHE, TOPIC, Position(0, 1)) as subscription:
        replayed = await ready_events(subscription)
        await _publish_as(engines, service, publisher, "live:2")
        live = await ready_events(subscription)

    # Assert
    assert [(e.value, e.publisher_id) for e in replayed + live if isinstance(e, Message)] == [
        ("retained:1", "tok:1:é"),
        ("live:2", "tok:1:é"),
    ]


async def _publish_as(engines: Engines, service: TopicsService, principal: Principal, value: str) -> None:
    await engines.settle(await service.publish(CACHE, TOPIC, value, principal))


async def test_engine_subscribers_see_the_same_numbers_in_the_same_order(engines: Engines) -> None:
    # Arrange
    service = await engines.make_service()
    first = await service.subscribe(CACHE, TOPIC, Position(0, 1))
    second = await service.subscribe(CACHE, TOPIC, Position(0, 1))

    # Act
    published = await _publish(engines, service, *(f"m{i}" for i in range(10)))
    seen = [await ready_events(s) for s in (first, second)]

    # Assert
    expected = [(m.sequence_page, m.sequence_number, m.value) for m in published]
    for events in seen:
        assert [(e.sequence_page, e.sequence_number, e.value) for e in events if isinstance(e, Message)] == expected
    first.close()
    second.close()


async def test_engine_retains_publishes_without_subscribers_for_replay(engines: Engines) -> None:
    # Arrange
    service = await engines.make_service()
    await _publish(engines, service, "a", "b", "c")

    # Act (rule 3: N > 0, P unknown)
    with await service.subscribe(CACHE, TOPIC, Position(0, 2)) as subscription:
        events = await ready_events(subscription)

    # Assert
    assert numbers(events) == [2, 3]
    assert discontinuities(events) == []


async def test_engine_replays_from_n_in_the_current_page_then_goes_live(engines: Engines) -> None:
    # Arrange
    service = await engines.make_service()
    published = await _publish(engines, service, "a", "b", "c")
    page = published[0].sequence_page

    # Act (rule 3: P = current page)
    with await service.subscribe(CACHE, TOPIC, Position(page, 3)) as subscription:
        replayed = await ready_events(subscription)
        await _publish(engines, service, "d")
        live = await ready_events(subscription)

    # Assert
    assert numbers(replayed) == [3]
    assert numbers(live) == [4]


async def test_engine_retention_is_bounded_by_count(engines: Engines) -> None:
    # Arrange
    service = await engines.make_service(SMALL)
    published = await _publish(engines, service, *"abcdef")

    # Act (rule 3: N older than the oldest retained message)
    with await service.subscribe(CACHE, TOPIC, Position(0, 1)) as subscription:
        events = await ready_events(subscription)

    # Assert
    assert events[0] == Discontinuity(0, 2, published[0].sequence_page)
    assert numbers(events) == [3, 4, 5, 6]


async def test_engine_retention_is_bounded_by_bytes(engines: Engines) -> None:
    # Arrange
    service = await engines.make_service(SMALL)
    await _publish(engines, service, "x" * 10, "y" * 10, "z" * 10)

    # Act
    with await service.subscribe(CACHE, TOPIC, Position(0, 1)) as subscription:
        events = await ready_events(subscription)

    # Assert: 24 bytes hold only the last two 10-byte messages.
    assert isinstance(events[0], Discontinuity)
    assert (events[0].last_topic_sequence, events[0].new_topic_sequence) == (0, 1)
    assert numbers(events) == [2, 3]


async def test_engine_retention_keeps_the_newest_message_even_when_alone_too_big(engines: Engines) -> None:
    # Arrange
    service = await engines.make_service(Limits(max_message_bytes=16, retention_messages=4, retention_bytes=16))
    await _publish(engines, service, "x" * 16, "y" * 16)

    # Act
    with await service.subscribe(CACHE, TOPIC, Position(0, 2)) as subscription:
        events = await ready_events(subscription)

    # Assert
    assert numbers(events) == [2]


async def test_engine_resume_depth_does_not_depend_on_cached_encodings(engines: Engines) -> None:
    # Arrange: ten 10-byte values under an 80-byte bound; a reader caches a 30-byte encoding on each it reads,
    # as transports do (this process's copy of the topic counts them).
    service = await engines.make_service(Limits(max_message_bytes=16, retention_messages=100, retention_bytes=80))
    published = await _publish(engines, service, *(f"{i:010d}" for i in range(1, 11)))
    with await service.subscribe(CACHE, TOPIC, Position(0, 1)) as reader:
        for event in await ready_events(reader):
            if isinstance(event, Message):
                event.encoded("wire", lambda message: bytes(30))

    # Act
    with await service.subscribe(CACHE, TOPIC, Position(0, 1)) as replay:
        events = await ready_events(replay)

    # Assert: the eight newest values still fit, encodings or not.
    assert events[0] == Discontinuity(0, 2, published[0].sequence_page)
    assert numbers(events) == list(range(3, 11))


async def test_engine_stale_page_gets_a_discontinuity_then_everything_retained(engines: Engines) -> None:
    # Arrange
    service = await engines.make_service(SMALL)
    published = await _publish(engines, service, *"abcdef")
    page = published[0].sequence_page

    # Act (rule 4)
    with await service.subscribe(CACHE, TOPIC, Position(page - 1, 4)) as subscription:
        events = await ready_events(subscription)

    # Assert
    assert events[0] == Discontinuity(3, 2, page)
    assert numbers(events) == [3, 4, 5, 6]


async def test_engine_future_position_jumps_to_the_current_one_then_live(engines: Engines) -> None:
    # Arrange
    service = await engines.make_service()
    published = await _publish(engines, service, "a", "b")
    page = published[0].sequence_page

    # Act (rule 5)
    with await service.subscribe(CACHE, TOPIC, Position(page, 10)) as subscription:
        first = await ready_events(subscription)
        await _publish(engines, service, "c")
        live = await ready_events(subscription)

    # Assert
    assert first == [Discontinuity(9, 2, page)]
    assert numbers(live) == [3]


async def test_engine_caught_up_subscriber_gets_no_discontinuity(engines: Engines) -> None:
    # Arrange
    service = await engines.make_service()
    published = await _publish(engines, service, "a", "b")

    # Act: resume exactly after the last message received (what the Node SDK does)
    with await service.subscribe(CACHE, TOPIC, Position(published[0].sequence_page, 3)) as subscription:
        before = await ready_events(subscription)
        await _publish(engines, service, "c")
        after = await ready_events(subscription)

    # Assert
    assert before == []
    assert numbers(after) == [3]


async def test_engine_slow_subscriber_gets_a_discontinuity_and_continues_from_the_oldest(engines: Engines) -> None:
    # Arrange
    service = await engines.make_service(SMALL)
    subscription = await service.subscribe(CACHE, TOPIC, Position(0, 1))
    published = await _publish(engines, service, *"abcdefgh")

    # Act (rule 6)
    events = await ready_events(subscription)
    subscription.close()

    # Assert
    assert events[0] == Discontinuity(0, 4, published[0].sequence_page)
    assert numbers(events) == [5, 6, 7, 8]


async def test_engine_retired_topic_starts_a_new_greater_page(engines: Engines) -> None:
    # Arrange
    service = await engines.make_service()
    old = await _publish(engines, service, "a", "b")

    # Act
    retired = await engines.expire(service)
    new = await _publish(engines, service, "c")

    # Assert
    assert retired == 1
    assert new[0].sequence_page > old[0].sequence_page
    assert new[0].sequence_number == 1


async def test_engine_resume_in_a_retired_page_gets_the_new_page(engines: Engines) -> None:
    # Arrange
    service = await engines.make_service()
    old = await _publish(engines, service, "a", "b")
    await engines.expire(service)
    new = await _publish(engines, service, "c", "d")

    # Act (rule 4 after a reset)
    with await service.subscribe(CACHE, TOPIC, Position(old[0].sequence_page, 3)) as subscription:
        events = await ready_events(subscription)

    # Assert
    assert events[0] == Discontinuity(2, 0, new[0].sequence_page)
    assert numbers(events) == [1, 2]


async def test_engine_subscription_ends_when_its_cache_is_deleted(engines: Engines) -> None:
    # Arrange
    service = await engines.make_service()
    subscription = await service.subscribe(CACHE, TOPIC, Position(0, 1))

    # Act
    await service.delete_cache(CACHE)

    # Assert
    with pytest.raises(CacheNotFound):
        await subscription.next_events()
    subscription.close()


async def test_engine_frees_subscriptions_and_retires_unused_topics(engines: Engines) -> None:
    # Arrange
    service = await engines.make_service()
    await _publish(engines, service, "a")
    subscription = await service.subscribe(CACHE, TOPIC, Position(0, 1))

    # Act
    kept = await engines.expire(service)
    subscription.close()
    retired = await engines.expire(service)

    # Assert
    assert (kept, retired) == (0, 1)
    assert service.topic_count() == 0
