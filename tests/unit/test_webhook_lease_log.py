"""While the store (Redis) is unreachable, every lease operation of every webhook fails: the dispatcher logs that
as one outage, not a line per webhook per round (issue 17 item 5). One webhook whose lease operations keep
failing while the others' work is one outage too, not a start and an end line every round."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import pytest

from tidings.server.core import TopicsService, Unavailable
from tidings.server.webhooks import Outcome, Verdict, Webhook, WebhookDispatcher, WebhookLeases

from .conftest import CACHE, TOPIC

WEBHOOK_LOGGER = "tidings.server.webhooks"
LEASE_SECONDS = 0.02  # leases are extended every 5 ms: many rounds in a short test
WEBHOOKS = 3


class FlakyLeaseStore:
    """A `LeaseStore` that is up or down (every call raises `Unavailable`); counts the calls of each state. The
    leases of the webhooks named in ``broken`` fail on their own, with an error that is not an outage."""

    def __init__(self, broken: frozenset[str] = frozenset()) -> None:
        self.down = False
        self.broken = broken
        self.failed_takes = 0
        self.taken_again = 0
        self.changed = asyncio.Event()

    async def take_webhook_lease(self, cache_name: str, name: str, holder: str, ttl: float) -> bool:
        self.changed.set()
        if name in self.broken:
            self.failed_takes += 1
            raise ValueError("malformed lease record")
        if self.down:
            self.failed_takes += 1
            raise Unavailable("Redis is unreachable")
        if self.failed_takes:
            self.taken_again += 1
        return True

    async def drop_webhook_lease(self, cache_name: str, name: str, holder: str) -> None:
        if self.down:
            raise Unavailable("Redis is unreachable")

    async def load_webhook_cursor(self, cache_name: str, name: str) -> tuple[int, int] | None:
        return None

    async def save_webhook_cursor(
        self, cache_name: str, name: str, holder: str, sequence_page: int, next_sequence_number: int
    ) -> bool:
        return True

    async def wait_until(self, condition: str, count: int) -> None:
        async with asyncio.timeout(30):
            while getattr(self, condition) < count:
                self.changed.clear()
                await self.changed.wait()


class IdleSender:
    """No message is published: nothing is POSTed."""

    async def back_off(self, url: str, seconds: float, sleep: Callable[[float], Awaitable[None]]) -> None:
        """The backoff as it is (a receiver's recovery is `WebhookSender`'s to notice)."""
        await sleep(seconds)

    async def post(self, url: str, body: bytes, signature: str) -> Outcome:
        return Outcome(Verdict.DELIVERED)

    async def close(self) -> None:
        """Nothing to close."""


async def test_webhook_leases_log_a_store_outage_once_and_its_end_once(
    service: TopicsService, caplog: pytest.LogCaptureFixture
) -> None:
    # Arrange
    caplog.set_level(logging.INFO, WEBHOOK_LOGGER)
    store = FlakyLeaseStore()
    dispatcher = WebhookDispatcher(
        service,
        IdleSender(),  # type: ignore[arg-type]
        leases=WebhookLeases(store, ttl=LEASE_SECONDS),
    )
    dispatcher.start()
    for number in range(WEBHOOKS):
        await dispatcher.webhook_put(Webhook(CACHE, f"hook{number}", TOPIC, "http://127.0.0.1:9/hook", "secret"))

    # Act: the store is down for 60 lease operations, then back
    try:
        store.down = True
        await store.wait_until("failed_takes", 60)
        store.down = False
        await store.wait_until("taken_again", WEBHOOKS)
    finally:
        await dispatcher.close()

    # Assert
    lease_lines = [
        (r.levelname, r.getMessage()) for r in caplog.records if r.getMessage().startswith("keeping the leases")
    ]
    assert [level for level, _ in lease_lines] == ["WARNING", "INFO"], lease_lines
    assert "Redis is unreachable" in lease_lines[0][1]
    assert "works again after" in lease_lines[1][1]
    assert sum(r.levelno >= logging.WARNING for r in caplog.records if r.name == WEBHOOK_LOGGER) <= 1 + WEBHOOKS


def _lease_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [(r.levelname, r.getMessage()) for r in caplog.records if r.getMessage().startswith("keeping the leases")]


async def _dispatcher_of(service: TopicsService, store: FlakyLeaseStore) -> WebhookDispatcher:
    """A started dispatcher delivering webhooks ``hook0`` to ``hook2``, leased in ``store``."""
    dispatcher = WebhookDispatcher(
        service,
        IdleSender(),  # type: ignore[arg-type]
        leases=WebhookLeases(store, ttl=LEASE_SECONDS),
    )
    dispatcher.start()
    for number in range(WEBHOOKS):
        await dispatcher.webhook_put(Webhook(CACHE, f"hook{number}", TOPIC, "http://127.0.0.1:9/hook", "secret"))
    return dispatcher


async def test_webhook_leases_one_webhook_failing_while_the_others_work_is_logged_once(
    service: TopicsService, caplog: pytest.LogCaptureFixture
) -> None:
    # Arrange: hook0's lease record is broken; hook1's and hook2's are extended every round.
    caplog.set_level(logging.INFO, WEBHOOK_LOGGER)
    store = FlakyLeaseStore(broken=frozenset({"hook0"}))
    dispatcher = await _dispatcher_of(service, store)

    # Act: 40 rounds of failing takes of hook0, each beside the others' extensions
    try:
        await store.wait_until("failed_takes", 40)
    finally:
        await dispatcher.close()

    # Assert: one line for the whole run, with the error; no recovery between rounds
    lines = _lease_lines(caplog)
    assert [level for level, _ in lines] == ["WARNING"], lines
    assert "webhook 'hook0' of cache 'cache': no lease (malformed lease record)" in lines[0][1]


async def test_webhook_leases_a_deleted_webhook_that_was_failing_ends_the_outage(
    service: TopicsService, caplog: pytest.LogCaptureFixture
) -> None:
    # Arrange: hook0's lease keeps failing.
    caplog.set_level(logging.INFO, WEBHOOK_LOGGER)
    store = FlakyLeaseStore(broken=frozenset({"hook0"}))
    dispatcher = await _dispatcher_of(service, store)
    await store.wait_until("failed_takes", 1)

    # Act
    try:
        dispatcher.webhook_deleted(CACHE, "hook0")
    finally:
        await dispatcher.close()

    # Assert
    assert [level for level, _ in _lease_lines(caplog)] == ["WARNING", "INFO"]


async def test_webhook_leases_not_given_up_at_close_are_logged_in_one_line(
    service: TopicsService, caplog: pytest.LogCaptureFixture
) -> None:
    # Arrange: three webhooks delivered here.
    caplog.set_level(logging.INFO, WEBHOOK_LOGGER)
    store = FlakyLeaseStore()
    dispatcher = await _dispatcher_of(service, store)

    # Act: Redis goes away, and the node stops
    store.down = True
    await dispatcher.close()

    # Assert
    lines = [r.getMessage() for r in caplog.records if "give up" in r.getMessage()]
    assert lines == [
        "could not give up the leases of 3 webhooks ('hook0', 'hook1', 'hook2'): Redis is unreachable; they run out "
        f"within {LEASE_SECONDS:g} s"
    ]
