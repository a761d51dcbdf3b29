"""TopicsService lifecycles: heartbeats, topic retirement, caches, and how streams end."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from tidings.server.core import (
    HEARTBEAT,
    CacheAlreadyExists,
    CacheNotFound,
    InvalidArgument,
    Message,
    Position,
    TopicsService,
    Unavailable,
)

from ._support import FakeClock, MemoryStore, RecordingEngine, ready_events
from .conftest import CACHE, TOPIC, MakeService


async def _publish(service: TopicsService, count: int, topic: str = TOPIC) -> list[Message]:
    return [await service.publish(CACHE, topic, f"v{i}") for i in range(count)]


# --- heartbeats ------------------------------------------------------------------------------------------


async def test_tick_heartbeats_wakes_only_subscriptions_idle_for_the_interval(
    make_service: MakeService, clock: FakeClock
) -> None:
    # Arrange
    service = await make_service(heartbeat_interval=10.0)
    idle = await service.subscribe(CACHE, TOPIC)
    idle_wait = asyncio.create_task(idle.next_events())
    clock.advance(5.0)
    recent = await service.subscribe(CACHE, TOPIC)
    recent_wait = asyncio.create_task(recent.next_events())
    await asyncio.sleep(0)

    # Act
    early = service.tick_heartbeats(clock.advance(4.9))  # idle for 9.9 s
    due = service.tick_heartbeats(clock.advance(0.1))  # idle for 10 s; recent for 5 s
    await asyncio.sleep(0)

    # Assert
    assert (early, due) == (0, 1)
    assert await idle_wait == [HEARTBEAT]
    assert not recent_wait.done()
    recent_wait.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await recent_wait
    idle.close()
    recent.close()


async def test_tick_heartbeats_restarts_the_idle_interval(make_service: MakeService, clock: FakeClock) -> None:
    # Arrange
    service = await make_service(heartbeat_interval=10.0)
    subscription = await service.subscribe(CACHE, TOPIC)
    waiting = asyncio.create_task(subscription.next_events())
    await asyncio.sleep(0)
    service.tick_heartbeats(clock.advance(10.0))
    assert await waiting == [HEARTBEAT]
    waiting = asyncio.create_task(subscription.next_events())
    await asyncio.sleep(0)

    # Act
    early = service.tick_heartbeats(clock.advance(9.0))
    due = service.tick_heartbeats(clock.advance(1.0))

    # Assert
    assert (early, due) == (0, 1)
    assert await waiting == [HEARTBEAT]
    subscription.close()


async def _housekeeping_ticks(
    make_service: MakeService, clock: FakeClock, work: list[float], monkeypatch: pytest.MonkeyPatch
) -> list[float]:
    """Run the housekeeping for ``len(work)`` ticks, the n-th tick's work taking ``work[n]`` seconds of the
    fake clock; when each tick began."""
    ticks: list[float] = []
    finished = asyncio.Event()

    async def sleep(seconds: float) -> None:
        clock.advance(seconds)
        if len(ticks) == len(work):
            finished.set()
            await asyncio.Event().wait()  # until cancelled

    service = await make_service(heartbeat_interval=4.0, sleep=sleep)  # a tick each second

    def tick_heartbeats(now: float) -> int:
        ticks.append(now)
        clock.advance(work[len(ticks) - 1])
        return 0

    monkeypatch.setattr(service, "tick_heartbeats", tick_heartbeats)
    started = clock()
    housekeeping = asyncio.create_task(service.run_housekeeping())
    await finished.wait()
    housekeeping.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await housekeeping
    return [round(tick - started, 6) for tick in ticks]


async def test_housekeeping_ticks_keep_their_pace_whatever_a_tick_takes(
    make_service: MakeService, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Act: each tick's heartbeats take 0.3 s (sleeping a whole tick after them made it 1.3 s apart).
    ticks = await _housekeeping_ticks(make_service, clock, [0.3] * 5, monkeypatch)

    # Assert
    assert ticks == [1.0, 2.0, 3.0, 4.0, 5.0]


async def test_housekeeping_after_a_stall_goes_on_from_then_without_a_burst_of_ticks(
    make_service: MakeService, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Act: the second tick stalls for 3.5 s (a full garbage collection, say); the fourth for 1.5 s.
    ticks = await _housekeeping_ticks(make_service, clock, [0.1, 3.5, 0.1, 1.5, 0.1, 0.1], monkeypatch)

    # Assert: never back to back (an eighth of a tick between); after the long stall the beat starts again from
    # its end; after the short one, one late tick and then back on the beat.
    assert ticks == [1.0, 2.0, 5.625, 6.625, 8.25, 8.625]


async def test_tick_heartbeats_skips_subscriptions_with_messages_to_deliver(
    make_service: MakeService, clock: FakeClock
) -> None:
    # Arrange: the subscriber is not caught up (not waiting): it gets messages, not heartbeats.
    service = await make_service(heartbeat_interval=10.0)
    subscription = await service.subscribe(CACHE, TOPIC)
    published = await _publish(service, 2)

    # Act
    sent = service.tick_heartbeats(clock.advance(60.0))
    events = await subscription.next_events()

    # Assert
    assert sent == 0
    assert events == published
    subscription.close()


async def test_heartbeat_does_not_advance_sequence_numbers(make_service: MakeService, clock: FakeClock) -> None:
    # Arrange
    service = await make_service(heartbeat_interval=10.0)
    subscription = await service.subscribe(CACHE, TOPIC)
    waiting = asyncio.create_task(subscription.next_events())
    await asyncio.sleep(0)
    service.tick_heartbeats(clock.advance(10.0))
    assert await waiting == [HEARTBEAT]

    # Act
    message = await service.publish(CACHE, TOPIC, "x")
    events = await ready_events(subscription)

    # Assert
    assert events == [message]
    assert message.sequence_number == 1
    subscription.close()


async def test_heartbeat_woken_subscription_delivers_a_message_published_meanwhile(
    make_service: MakeService, clock: FakeClock
) -> None:
    # Arrange
    service = await make_service(heartbeat_interval=10.0)
    subscription = await service.subscribe(CACHE, TOPIC)
    waiting = asyncio.create_task(subscription.next_events())
    await asyncio.sleep(0)

    # Act: the heartbeat wake and a publish land before the subscriber runs.
    service.tick_heartbeats(clock.advance(10.0))
    message = await service.publish(CACHE, TOPIC, "x")

    # Assert
    assert await waiting == [message]
    subscription.close()


# --- retirement -------------------------------------------------------------------------------------------


async def test_retire_idle_topics_retires_only_idle_topics_without_subscribers(
    make_service: MakeService, clock: FakeClock, engines: list[RecordingEngine]
) -> None:
    # Arrange
    service = await make_service()
    ttl = service.limits.topic_idle_ttl
    await service.publish(CACHE, "idle", "x")
    subscribed = await service.subscribe(CACHE, "subscribed")
    clock.advance(ttl / 2)
    await service.publish(CACHE, "recent", "x")
    clock.advance(ttl / 2)

    # Act
    retired = await service.retire_idle_topics(clock())

    # Assert
    assert retired == 1
    assert engines[0].retired == [(CACHE, "idle")]
    assert service.topic_count() == 2
    subscribed.close()


async def test_retire_idle_topics_waits_a_full_ttl_after_the_last_subscriber_left(
    make_service: MakeService, clock: FakeClock
) -> None:
    # Arrange
    service = await make_service()
    ttl = service.limits.topic_idle_ttl
    subscription = await service.subscribe(CACHE, TOPIC)
    clock.advance(ttl * 3)
    subscription.close()

    # Act
    early = await service.retire_idle_topics(clock.advance(ttl - 0.001))
    due = await service.retire_idle_topics(clock.advance(0.001))

    # Assert
    assert (early, due) == (0, 1)
    assert service.topic_count() == 0


async def test_retired_topic_restarts_at_one_in_a_greater_page(make_service: MakeService, clock: FakeClock) -> None:
    # Arrange
    service = await make_service()
    before = await _publish(service, 3)
    clock.advance(service.limits.topic_idle_ttl)
    await service.retire_idle_topics(clock())

    # Act
    after = await service.publish(CACHE, TOPIC, "again")

    # Assert
    assert after.sequence_number == 1
    assert after.sequence_page > before[0].sequence_page


# --- caches and ending streams -----------------------------------------------------------------------------


async def test_create_cache_lists_it_and_stores_it(service: TopicsService, store: MemoryStore) -> None:
    # Act
    await service.create_cache("zeta")
    await service.create_cache("alpha")

    # Assert
    assert await service.list_caches() == ["alpha", CACHE, "zeta"]
    assert store.caches == {"alpha", CACHE, "zeta"}
    assert service.has_cache("alpha")


async def test_create_existing_cache_is_cache_already_exists(service: TopicsService) -> None:
    with pytest.raises(CacheAlreadyExists) as raised:
        await service.create_cache(CACHE)
    assert raised.value.cache_name == CACHE


async def test_create_cache_with_bad_name_is_invalid_argument(service: TopicsService) -> None:
    with pytest.raises(InvalidArgument, match="cache_name"):
        await service.create_cache("bad\x00name")


async def test_delete_unknown_cache_is_cache_not_found(service: TopicsService) -> None:
    with pytest.raises(CacheNotFound):
        await service.delete_cache("nope")


async def test_start_loads_caches_from_the_store(make_service: MakeService, store: MemoryStore) -> None:
    # Arrange
    store.caches = {"kept", "also-kept"}

    # Act
    service = await make_service(caches=())

    # Assert
    assert await service.list_caches() == ["also-kept", "kept"]


async def test_delete_cache_ends_subscriptions_with_cache_not_found(
    service: TopicsService, store: MemoryStore, engine: RecordingEngine
) -> None:
    # Arrange
    waiting_subscription = await service.subscribe(CACHE, "one")
    waiting = asyncio.create_task(waiting_subscription.next_events())
    behind_subscription = await service.subscribe(CACHE, "two")
    await service.publish(CACHE, "two", "unread")
    await asyncio.sleep(0)

    # Act
    await service.delete_cache(CACHE)

    # Assert
    with pytest.raises(CacheNotFound):
        await waiting
    with pytest.raises(CacheNotFound):
        await behind_subscription.next_events()
    assert sorted(engine.retired) == [(CACHE, "one"), (CACHE, "two")]
    assert CACHE not in store.caches
    assert service.topic_count() == 0
    waiting_subscription.close()
    behind_subscription.close()


async def test_delete_cache_makes_later_publishes_and_subscribes_cache_not_found(service: TopicsService) -> None:
    # Arrange
    await service.publish(CACHE, TOPIC, "x")

    # Act
    await service.delete_cache(CACHE)

    # Assert
    with pytest.raises(CacheNotFound):
        await service.publish(CACHE, TOPIC, "x")
    with pytest.raises(CacheNotFound):
        await service.subscribe(CACHE, TOPIC)
    assert service.subscription_count(CACHE) == 0


async def test_recreated_cache_starts_topics_in_a_new_page(service: TopicsService) -> None:
    # Arrange
    before = await service.publish(CACHE, TOPIC, "x")
    await service.delete_cache(CACHE)

    # Act
    await service.create_cache(CACHE)
    after = await service.publish(CACHE, TOPIC, "y")

    # Assert
    assert after.sequence_number == 1
    assert after.sequence_page > before.sequence_page


async def test_close_ends_subscriptions_with_unavailable(service: TopicsService) -> None:
    # Arrange
    subscription = await service.subscribe(CACHE, TOPIC)
    waiting = asyncio.create_task(subscription.next_events())
    await asyncio.sleep(0)

    # Act
    await service.close()

    # Assert
    with pytest.raises(Unavailable):
        await waiting
    with pytest.raises(Unavailable):
        await service.publish(CACHE, TOPIC, "x")
    with pytest.raises(Unavailable):
        await service.subscribe(CACHE, TOPIC)
    subscription.close()


async def test_close_is_idempotent_and_records_the_page_floor(service: TopicsService, store: MemoryStore) -> None:
    # Arrange
    message = await service.publish(CACHE, TOPIC, "x")

    # Act
    await service.close()
    await service.close()

    # Assert
    assert store.page_floor == message.sequence_page


async def test_closed_subscription_refuses_next_events(service: TopicsService) -> None:
    # Arrange
    subscription = await service.subscribe(CACHE, TOPIC)
    waiting = asyncio.create_task(subscription.next_events())
    await asyncio.sleep(0)

    # Act
    subscription.close()
    subscription.close()

    # Assert
    with pytest.raises(RuntimeError, match="closed"):
        await waiting
    with pytest.raises(RuntimeError, match="closed"):
        await subscription.next_events()
    assert service.subscription_count(CACHE) == 0


async def test_closed_subscription_refuses_next_events_even_with_a_pending_discontinuity(
    service: TopicsService,
) -> None:
    # Arrange: resuming from the future leaves a discontinuity pending (rule 5).
    subscription = await service.subscribe(CACHE, TOPIC, Position(0, 10))

    # Act
    subscription.close()

    # Assert: "RuntimeError once the subscription is closed" (TopicCursor.next_events).
    with pytest.raises(RuntimeError, match="closed"):
        await subscription.next_events()
