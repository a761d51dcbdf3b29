"""TopicsService with principals: grants enforced on publish and subscribe, cache management for
super-users, token ids stamped on messages, and subscriptions ended by key revocation or expiry."""

from __future__ import annotations

import asyncio

import pytest

from tidings.server.core import (
    CacheNotFound,
    InvalidArgument,
    Message,
    PermissionDenied,
    Principal,
    TopicGrant,
    TopicPermission,
    TopicsService,
    Unauthenticated,
)

from ._support import numbers, ready_events
from .conftest import CACHE, TOPIC, MakeService

OTHER_CACHE = "other"
ADMIN = Principal(super_user=True)
READ_WRITE = Principal(grants=(TopicGrant(TopicPermission.READ_WRITE, CACHE, topic_name=TOPIC),))
READ_ONLY = Principal(grants=(TopicGrant(TopicPermission.READ_ONLY, CACHE, topic_name=TOPIC),))
WRITE_ONLY = Principal(grants=(TopicGrant(TopicPermission.WRITE_ONLY, CACHE, topic_name=TOPIC),))
PREFIXED = Principal(grants=(TopicGrant(TopicPermission.READ_WRITE, CACHE, topic_prefix="ev-"),))
ANY_CACHE = Principal(grants=(TopicGrant(TopicPermission.READ_WRITE),))


@pytest.fixture
async def service2(make_service: MakeService) -> TopicsService:
    """A service with the caches ``CACHE`` and ``OTHER_CACHE``."""
    return await make_service(caches=(CACHE, OTHER_CACHE))


# --- publish and subscribe within and outside grants ---------------------------------------------


@pytest.mark.parametrize(
    ("principal", "may_publish", "may_subscribe"),
    [
        pytest.param(READ_WRITE, True, True, id="readwrite"),
        pytest.param(READ_ONLY, False, True, id="readonly"),
        pytest.param(WRITE_ONLY, True, False, id="writeonly"),
        pytest.param(Principal(), False, False, id="no-grants"),
    ],
)
@pytest.mark.parametrize("topic_exists", [False, True], ids=["new-topic", "live-topic"])
async def test_service_enforces_roles(
    service: TopicsService, principal: Principal, may_publish: bool, may_subscribe: bool, topic_exists: bool
) -> None:
    # Arrange
    if topic_exists:
        await service.publish(CACHE, TOPIC, "first", ADMIN)

    # Act / Assert
    if may_publish:
        message = await service.publish(CACHE, TOPIC, "x", principal)
        assert message.value == "x"
    else:
        with pytest.raises(PermissionDenied, match="publish"):
            await service.publish(CACHE, TOPIC, "x", principal)
    if may_subscribe:
        (await service.subscribe(CACHE, TOPIC, principal=principal)).close()
    else:
        with pytest.raises(PermissionDenied, match="subscribe"):
            await service.subscribe(CACHE, TOPIC, principal=principal)


async def test_service_subscribe_within_grants_delivers(service: TopicsService) -> None:
    # Arrange
    with await service.subscribe(CACHE, TOPIC, principal=READ_ONLY) as subscription:
        # Act
        await service.publish(CACHE, TOPIC, "a", WRITE_ONLY)
        events = await ready_events(subscription)

    # Assert
    assert numbers(events) == [1]


@pytest.mark.parametrize(
    ("principal", "cache", "topic"),
    [
        pytest.param(READ_WRITE, OTHER_CACHE, TOPIC, id="other-cache"),
        pytest.param(READ_WRITE, CACHE, "other-topic", id="other-topic"),
        pytest.param(PREFIXED, CACHE, "ev", id="outside-prefix"),
        pytest.param(PREFIXED, CACHE, "xev-1", id="prefix-not-at-start"),
        pytest.param(PREFIXED, OTHER_CACHE, "ev-1", id="prefix-other-cache"),
    ],
)
@pytest.mark.parametrize("topic_exists", [False, True], ids=["new-topic", "live-topic"])
async def test_service_denies_outside_grants(
    service2: TopicsService, principal: Principal, cache: str, topic: str, topic_exists: bool
) -> None:
    # Arrange
    if topic_exists:
        await service2.publish(cache, topic, "first", ADMIN)

    # Act / Assert
    with pytest.raises(PermissionDenied):
        await service2.publish(cache, topic, "x", principal)
    with pytest.raises(PermissionDenied):
        await service2.subscribe(cache, topic, principal=principal)


@pytest.mark.parametrize(
    ("principal", "cache", "topic"),
    [
        pytest.param(PREFIXED, CACHE, "ev-1", id="inside-prefix"),
        pytest.param(PREFIXED, CACHE, "ev-", id="prefix-itself"),
        pytest.param(ANY_CACHE, OTHER_CACHE, "anything", id="all-caches"),
    ],
)
async def test_service_allows_inside_grants(
    service2: TopicsService, principal: Principal, cache: str, topic: str
) -> None:
    # Act
    with await service2.subscribe(cache, topic, principal=principal) as subscription:
        await service2.publish(cache, topic, "x", principal)
        events = await ready_events(subscription)

    # Assert
    assert numbers(events) == [1]


async def test_service_checks_permission_before_cache_existence(service: TopicsService) -> None:
    # Act / Assert: a caller without rights on "missing" learns nothing about it.
    with pytest.raises(PermissionDenied):
        await service.publish("missing", TOPIC, "x", READ_WRITE)
    with pytest.raises(PermissionDenied):
        await service.subscribe("missing", TOPIC, principal=READ_WRITE)


async def test_service_reports_a_missing_cache_to_a_caller_allowed_on_it(service: TopicsService) -> None:
    # Act / Assert
    with pytest.raises(CacheNotFound):
        await service.publish("missing", TOPIC, "x", ANY_CACHE)
    with pytest.raises(CacheNotFound):
        await service.subscribe("missing", TOPIC, principal=ANY_CACHE)


@pytest.mark.parametrize(
    ("cache", "topic"),
    [
        pytest.param("", TOPIC, id="empty-cache"),
        pytest.param(CACHE, "", id="empty-topic"),
        pytest.param("bad\x00name", TOPIC, id="control-in-cache"),
        pytest.param(CACHE, "t" * 256, id="topic-too-long"),
    ],
)
async def test_service_validates_names_before_permission(service: TopicsService, cache: str, topic: str) -> None:
    # Arrange
    denied = Principal()

    # Act / Assert
    with pytest.raises(InvalidArgument):
        await service.publish(cache, topic, "x", denied)
    with pytest.raises(InvalidArgument):
        await service.subscribe(cache, topic, principal=denied)


# --- cache management ----------------------------------------------------------------------------


@pytest.mark.parametrize("principal", [READ_WRITE, ANY_CACHE, Principal()], ids=["one-topic", "all-caches", "none"])
async def test_service_cache_management_needs_super_user(service: TopicsService, principal: Principal) -> None:
    # Act / Assert
    with pytest.raises(PermissionDenied, match="super-user"):
        await service.create_cache("new", principal)
    with pytest.raises(PermissionDenied, match="super-user"):
        await service.delete_cache(CACHE, principal)
    with pytest.raises(PermissionDenied, match="super-user"):
        await service.list_caches(principal)
    assert await service.list_caches(ADMIN) == [CACHE]


async def test_service_cache_management_validates_names_before_permission(service: TopicsService) -> None:
    # Act / Assert
    with pytest.raises(InvalidArgument):
        await service.create_cache("", READ_WRITE)
    with pytest.raises(InvalidArgument):
        await service.delete_cache("bad\x01", READ_WRITE)


async def test_service_super_user_manages_caches(service: TopicsService) -> None:
    # Act
    await service.create_cache("new", ADMIN)
    listed = await service.list_caches(ADMIN)
    await service.delete_cache("new", ADMIN)

    # Assert
    assert listed == [CACHE, "new"]
    assert await service.list_caches(ADMIN) == [CACHE]


# --- token id as publisher id --------------------------------------------------------------------


async def test_service_stamps_the_token_id_as_publisher_id(service: TopicsService) -> None:
    # Arrange
    publisher = Principal(grants=READ_WRITE.grants, token_id="user-42")

    with await service.subscribe(CACHE, TOPIC, principal=READ_ONLY) as subscription:
        # Act
        published = await service.publish(CACHE, TOPIC, "x", publisher)
        await service.publish(CACHE, TOPIC, "y", READ_WRITE)
        events = await ready_events(subscription)

    # Assert
    assert published.publisher_id == "user-42"
    messages = [event for event in events if isinstance(event, Message)]
    assert [m.publisher_id for m in messages] == ["user-42", ""]


# --- revocation and expiry -----------------------------------------------------------------------


def _keyed(key_id: str, expires_at: float | None = None) -> Principal:
    return Principal(grants=ANY_CACHE.grants, key_id=key_id, expires_at=expires_at)


async def test_revoke_key_ends_only_that_keys_subscriptions(service: TopicsService) -> None:
    # Arrange
    revoked = await service.subscribe(CACHE, TOPIC, principal=_keyed("k1"))
    revoked_too = await service.subscribe(CACHE, "topic-2", principal=_keyed("k1", expires_at=1e12))
    other_key = await service.subscribe(CACHE, TOPIC, principal=_keyed("k2"))
    anonymous = await service.subscribe(CACHE, TOPIC)
    waiting = asyncio.create_task(revoked.next_events())
    await asyncio.sleep(0)  # let it start waiting

    # Act
    ended = service.revoke_key("k1")

    # Assert
    assert ended == 2
    with pytest.raises(Unauthenticated, match="revoked"):
        await waiting
    with pytest.raises(Unauthenticated, match="revoked"):
        await revoked_too.next_events()
    await service.publish(CACHE, TOPIC, "still here", ADMIN)
    assert numbers(await ready_events(other_key)) == [1]
    assert numbers(await ready_events(anonymous)) == [1]
    for subscription in (revoked, revoked_too, other_key, anonymous):
        subscription.close()
    assert service.subscription_count(CACHE) == 0


async def test_revoke_key_of_an_unknown_key_ends_nothing(service: TopicsService) -> None:
    # Arrange
    with await service.subscribe(CACHE, TOPIC, principal=_keyed("k1")) as subscription:
        # Act
        ended = service.revoke_key("nope")

        # Assert
        assert ended == 0
        await service.publish(CACHE, TOPIC, "x", ADMIN)
        assert numbers(await ready_events(subscription)) == [1]


def _token(token_id: str, issued_at: float) -> Principal:
    return Principal(grants=ANY_CACHE.grants, token_id=token_id, expires_at=1e12, issued_at=issued_at)


async def test_revoke_token_ends_that_token_ids_subscriptions_minted_until_then(service: TopicsService) -> None:
    # Arrange
    revoked = await service.subscribe(CACHE, TOPIC, principal=_token("t1", 100.0))
    revoked_too = await service.subscribe(CACHE, "topic-2", principal=_token("t1", 200.0))
    minted_later = await service.subscribe(CACHE, TOPIC, principal=_token("t1", 200.5))
    other_id = await service.subscribe(CACHE, TOPIC, principal=_token("t2", 100.0))
    keyed = await service.subscribe(CACHE, TOPIC, principal=_keyed("t1"))

    # Act
    ended = service.revoke_token("t1", 200.0)

    # Assert
    assert ended == 2
    for subscription in (revoked, revoked_too):
        with pytest.raises(Unauthenticated, match="token was revoked"):
            await subscription.next_events()
    await service.publish(CACHE, TOPIC, "x", ADMIN)
    for subscription in (minted_later, other_id, keyed):
        assert numbers(await ready_events(subscription)) == [1]
    for subscription in (revoked, revoked_too, minted_later, other_id, keyed):
        subscription.close()


async def test_expire_subscriptions_ends_expired_ones_only(service: TopicsService) -> None:
    # Arrange
    early = await service.subscribe(CACHE, TOPIC, principal=Principal(grants=READ_ONLY.grants, expires_at=100.0))
    on_time = await service.subscribe(CACHE, TOPIC, principal=Principal(grants=READ_ONLY.grants, expires_at=200.0))
    later = await service.subscribe(CACHE, TOPIC, principal=Principal(grants=READ_ONLY.grants, expires_at=200.5))
    keyed = await service.subscribe(CACHE, TOPIC, principal=_keyed("k"))
    admin = await service.subscribe(CACHE, TOPIC, principal=ADMIN)

    # Act
    ended = service.expire_subscriptions(200.0)

    # Assert
    assert ended == 2
    for subscription in (early, on_time):
        with pytest.raises(Unauthenticated, match="expired"):
            await subscription.next_events()
    await service.publish(CACHE, TOPIC, "x", ADMIN)
    for subscription in (later, keyed, admin):
        assert numbers(await ready_events(subscription)) == [1]
    for subscription in (early, on_time, later, keyed, admin):
        subscription.close()


async def test_expire_subscriptions_wakes_a_waiting_subscriber(service: TopicsService) -> None:
    # Arrange
    subscription = await service.subscribe(CACHE, TOPIC, principal=Principal(grants=READ_ONLY.grants, expires_at=5.0))
    waiting = asyncio.create_task(subscription.next_events())
    await asyncio.sleep(0)

    # Act
    service.expire_subscriptions(5.0)

    # Assert
    with pytest.raises(Unauthenticated):
        await waiting
    subscription.close()


async def test_closed_subscriptions_are_no_longer_tracked(service: TopicsService) -> None:
    # Arrange
    subscription = await service.subscribe(CACHE, TOPIC, principal=_keyed("k1", expires_at=10.0))
    subscription.close()

    # Act
    revoked = service.revoke_key("k1")
    expired = service.expire_subscriptions(1e12)

    # Assert
    assert (revoked, expired) == (0, 0)
    assert service.subscription_count(CACHE) == 0


async def test_ended_subscription_still_frees_its_slot_when_closed(service: TopicsService) -> None:
    # Arrange
    subscription = await service.subscribe(CACHE, TOPIC, principal=_keyed("k1"))
    service.revoke_key("k1")

    # Act
    subscription.close()

    # Assert
    assert service.subscription_count(CACHE) == 0
    assert service.revoke_key("k1") == 0
