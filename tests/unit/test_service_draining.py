"""TopicsService while draining (``--drain-timeout``): new work refused, open subscriptions go on."""

from __future__ import annotations

import asyncio

import pytest

from tidings.server.core import Unavailable

from .conftest import CACHE, TOPIC, MakeService


async def test_draining_refuses_new_publishes_and_subscriptions(make_service: MakeService) -> None:
    service = await make_service()
    service.start_draining()

    with pytest.raises(Unavailable):
        await service.publish(CACHE, TOPIC, "late")
    with pytest.raises(Unavailable):
        await service.subscribe(CACHE, TOPIC)
    assert service.draining


async def test_wait_subscriptions_ended_returns_when_the_last_open_one_closes(make_service: MakeService) -> None:
    service = await make_service()
    first = await service.subscribe(CACHE, TOPIC)
    second = await service.subscribe(CACHE, "other")
    service.start_draining()
    waiting = asyncio.create_task(service.wait_subscriptions_ended())

    first.close()
    await asyncio.sleep(0)
    after_first = waiting.done()
    second.close()
    await asyncio.wait_for(waiting, 5)

    assert not after_first
    assert service.subscription_total() == 0


async def test_wait_subscriptions_ended_returns_at_once_without_subscriptions(make_service: MakeService) -> None:
    service = await make_service()
    service.start_draining()

    await asyncio.wait_for(service.wait_subscriptions_ended(), 5)
