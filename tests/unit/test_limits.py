"""Configured limits: their validation, the token bucket, and how the service enforces them."""

from __future__ import annotations

from typing import Any

import pytest

from tidings.server.core import InvalidArgument, Limit, LimitExceeded, Limits, Position, TokenBucket, TopicsService

from ._support import FakeClock, numbers, ready_events
from .conftest import CACHE, TOPIC, MakeService

# --- Limits ----------------------------------------------------------------------------------------------

INVALID_LIMITS: dict[str, tuple[dict[str, Any], str]] = {
    "zero-message-bytes": ({"max_message_bytes": 0}, "max_message_bytes"),
    "zero-subscriptions": ({"max_subscriptions_per_cache": 0}, "max_subscriptions_per_cache"),
    "zero-retention-messages": ({"retention_messages": 0}, "retention_messages"),
    "negative-retention-messages": ({"retention_messages": -1}, "retention_messages"),
    "zero-caches": ({"max_caches": 0}, "max_caches"),
    "retention-below-message-size": ({"max_message_bytes": 100, "retention_bytes": 99}, "retention_bytes"),
    "zero-rate": ({"publish_rate_per_cache": 0.0}, "publish_rate_per_cache"),
    "negative-rate": ({"publish_rate_per_cache": -1.0}, "publish_rate_per_cache"),
    "zero-ttl": ({"topic_idle_ttl": 0.0}, "topic_idle_ttl"),
    "negative-ttl": ({"topic_idle_ttl": -5.0}, "topic_idle_ttl"),
    # NaN passes every "< 1" / "<= 0" check, and the CLI's click.FloatRange lets "nan" through.
    "nan-rate": ({"publish_rate_per_cache": float("nan")}, "publish_rate_per_cache"),
    "nan-ttl": ({"topic_idle_ttl": float("nan")}, "topic_idle_ttl"),
}


@pytest.mark.parametrize(("overrides", "field"), INVALID_LIMITS.values(), ids=INVALID_LIMITS.keys())
def test_limits_reject_invalid_values_naming_the_field(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field} "):
        Limits(**overrides)


@pytest.mark.parametrize(
    "overrides",
    [{}, {"max_message_bytes": 100, "retention_bytes": 100}, {"publish_rate_per_cache": 0.5}, {"max_caches": 1}],
    ids=["defaults", "retention-equal-to-message-size", "fractional-rate", "one-cache"],
)
def test_limits_accept_valid_values(overrides: dict[str, Any]) -> None:
    # Act
    limits = Limits(**overrides)

    # Assert
    for name, value in overrides.items():
        assert getattr(limits, name) == value


# --- TokenBucket -----------------------------------------------------------------------------------------


def test_token_bucket_starts_full_and_refuses_past_the_burst() -> None:
    # Arrange
    bucket = TokenBucket(rate=2.0, burst=3.0, now=0.0)

    # Act
    taken = [bucket.try_take(0.0) for _ in range(4)]

    # Assert
    assert taken == [True, True, True, False]


def test_token_bucket_refills_at_the_rate() -> None:
    # Arrange
    bucket = TokenBucket(rate=2.0, burst=2.0, now=0.0)
    assert bucket.try_take(0.0)
    assert bucket.try_take(0.0)

    # Act / Assert: one token every half second.
    assert not bucket.try_take(0.25)
    assert bucket.try_take(0.5)
    assert not bucket.try_take(0.5)
    assert bucket.try_take(1.0)


def test_token_bucket_refused_take_keeps_partial_tokens() -> None:
    # Arrange
    bucket = TokenBucket(rate=1.0, burst=1.0, now=0.0)
    assert bucket.try_take(0.0)

    # Act
    refused = bucket.try_take(0.5)
    allowed = bucket.try_take(1.0)

    # Assert
    assert (refused, allowed) == (False, True)


def test_token_bucket_holds_at_most_the_burst() -> None:
    # Arrange
    bucket = TokenBucket(rate=10.0, burst=2.0, now=0.0)

    # Act: a long idle time does not bank more than the burst.
    taken = [bucket.try_take(3600.0) for _ in range(3)]

    # Assert
    assert taken == [True, True, False]


# --- enforced by the service --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", [b"x" * 8, "é" * 4, "€€ab"], ids=["bytes-at-limit", "text-at-limit-in-utf8", "mixed-text-at-limit"]
)
async def test_publish_at_message_size_is_accepted(make_service: MakeService, value: str | bytes) -> None:
    # Arrange
    service = await make_service(Limits(max_message_bytes=8, retention_bytes=64))

    # Act
    message = await service.publish(CACHE, TOPIC, value)

    # Assert
    assert message.size == 8


@pytest.mark.parametrize(
    "value",
    [b"x" * 9, "é" * 5, "€€€", "x" * 10_000],
    ids=["bytes-over", "text-over-in-utf8", "three-chars-nine-bytes", "far-over"],
)
async def test_publish_over_message_size_is_request_size_limit(make_service: MakeService, value: str | bytes) -> None:
    # Arrange
    service = await make_service(Limits(max_message_bytes=8, retention_bytes=64))

    # Act
    with pytest.raises(LimitExceeded) as raised:
        await service.publish(CACHE, TOPIC, value)

    # Assert: rejected, nothing numbered.
    assert raised.value.limit is Limit.REQUEST_SIZE
    assert raised.value.limit.value == "request_size_limit_exceeded"
    assert (await service.publish(CACHE, TOPIC, "ok")).sequence_number == 1


async def test_subscribe_over_subscriptions_per_cache_is_topic_subscriptions_limit(make_service: MakeService) -> None:
    # Arrange: the limit counts subscriptions on every topic of the cache.
    service = await make_service(Limits(max_subscriptions_per_cache=2), caches=(CACHE, "other"))
    first = await service.subscribe(CACHE, "one")
    second = await service.subscribe(CACHE, "two")

    # Act
    with pytest.raises(LimitExceeded) as raised:
        await service.subscribe(CACHE, "three")

    # Assert
    assert raised.value.limit is Limit.TOPIC_SUBSCRIPTIONS
    assert raised.value.limit.value == "topic_subscriptions_limit_exceeded"
    assert service.subscription_count(CACHE) == 2
    with await service.subscribe("other", "one"):
        assert service.subscription_count("other") == 1
    first.close()
    second.close()


async def test_subscription_limit_is_freed_on_close(make_service: MakeService) -> None:
    # Arrange
    service = await make_service(Limits(max_subscriptions_per_cache=1))
    first = await service.subscribe(CACHE, TOPIC)

    # Act
    first.close()
    first.close()  # idempotent: frees one slot only once
    second = await service.subscribe(CACHE, TOPIC)

    # Assert
    assert service.subscription_count(CACHE) == 1
    second.close()
    assert service.subscription_count(CACHE) == 0


async def test_publish_over_rate_is_operations_rate_limit(make_service: MakeService, clock: FakeClock) -> None:
    # Arrange: 2 per second per cache, burst 2.
    service = await make_service(Limits(publish_rate_per_cache=2.0), caches=(CACHE, "other"))
    await service.publish(CACHE, "one", "a")
    await service.publish(CACHE, "two", "b")

    # Act
    with pytest.raises(LimitExceeded) as raised:
        await service.publish(CACHE, "one", "c")

    # Assert: the other cache has its own bucket; time refills this one; the refused publish took no number.
    assert raised.value.limit is Limit.OPERATIONS_RATE
    assert raised.value.limit.value == "operations_rate_limit_exceeded"
    assert (await service.publish("other", "one", "x")).sequence_number == 1
    clock.advance(0.5)
    assert (await service.publish(CACHE, "one", "d")).sequence_number == 2
    with pytest.raises(LimitExceeded):
        await service.publish(CACHE, "one", "e")


async def test_publish_rate_limit_applies_to_caches_loaded_at_start(
    make_service: MakeService, clock: FakeClock
) -> None:
    # Arrange: a service restarted on a store that already has the cache.
    await make_service()
    service = await make_service(Limits(publish_rate_per_cache=1.0))

    # Act
    await service.publish(CACHE, TOPIC, "a")

    # Assert
    with pytest.raises(LimitExceeded):
        await service.publish(CACHE, TOPIC, "b")


async def test_create_cache_over_max_caches_is_cache_count_limit(make_service: MakeService) -> None:
    # Arrange
    service = await make_service(Limits(max_caches=2))
    await service.create_cache("second")

    # Act
    with pytest.raises(LimitExceeded) as raised:
        await service.create_cache("third")

    # Assert: deleting a cache frees its slot.
    assert raised.value.limit is Limit.CACHE_COUNT
    assert await service.list_caches() == [CACHE, "second"]
    await service.delete_cache("second")
    await service.create_cache("third")
    assert await service.list_caches() == [CACHE, "third"]


async def test_retention_bounds_what_a_late_subscriber_can_replay(make_service: MakeService) -> None:
    # Arrange: retention by bytes (3 messages of 10 bytes fit in 30).
    service = await make_service(Limits(max_message_bytes=10, retention_messages=100, retention_bytes=30))
    for i in range(5):
        await service.publish(CACHE, TOPIC, f"{i}" * 10)

    # Act
    with await service.subscribe(CACHE, TOPIC, Position(0, 1)) as subscription:
        events = await ready_events(subscription)

    # Assert
    assert numbers(events) == [3, 4, 5]


async def test_publish_validates_the_value_before_looking_up_the_cache(service: TopicsService) -> None:
    # The request itself is judged first: an oversized or empty value is refused as such, whatever the cache.
    with pytest.raises(LimitExceeded) as oversized:
        await service.publish("nope", TOPIC, b"x" * (service.limits.max_message_bytes + 1))
    with pytest.raises(InvalidArgument):
        await service.publish("nope", TOPIC, b"")

    assert oversized.value.limit is Limit.REQUEST_SIZE
    assert service.topic_count() == 0


async def test_refused_subscribe_creates_no_topic(make_service: MakeService) -> None:
    service = await make_service(Limits(max_subscriptions_per_cache=1))
    kept = await service.subscribe(CACHE, TOPIC)

    with pytest.raises(LimitExceeded):
        await service.subscribe(CACHE, "another-topic")

    assert service.topic_count() == 1
    kept.close()


async def test_topics_per_cache_limit(make_service: MakeService) -> None:
    service = await make_service(Limits(max_topics_per_cache=2))
    await service.publish(CACHE, "a", "v")
    await service.publish(CACHE, "b", "v")

    with pytest.raises(LimitExceeded) as refused:
        await service.publish(CACHE, "c", "v")
    await service.publish(CACHE, "a", "still fine")

    assert refused.value.limit is Limit.TOPIC_COUNT
