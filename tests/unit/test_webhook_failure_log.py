"""A webhook whose endpoint is down logs its outage in a few lines, not one per attempt or message (issue 16 item
9): a worker over the memory engine, a scripted endpoint and the service's fake clock, moved by the backoff."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import pytest

from tidings.server.core import Position, TopicsService
from tidings.server.webhooks import Outcome, RetryPolicy, Verdict, Webhook, WebhookWorker

from ._support import FakeClock
from .conftest import CACHE, TOPIC

WEBHOOK_LOGGER = "tidings.server.webhooks"
DOWN = Outcome(Verdict.RETRY, "connection")
DELIVERED = Outcome(Verdict.DELIVERED)
BACKOFF = 3.0  # seconds each retry waits, on the fake clock


class ScriptedEndpoint:
    """A `WebhookSender` stand-in: fails the first ``failures`` POSTs, then takes every one."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.posts = 0

    async def back_off(self, url: str, seconds: float, sleep: Callable[[float], Awaitable[None]]) -> None:
        """The backoff as it is (a receiver's recovery is `WebhookSender`'s to notice)."""
        await sleep(seconds)

    async def post(self, url: str, body: bytes, signature: str) -> Outcome:
        self.posts += 1
        return DOWN if self.posts <= self.failures else DELIVERED

    async def close(self) -> None:
        """Nothing to close."""


async def _deliver(service: TopicsService, clock: FakeClock, endpoint: ScriptedEndpoint, messages: int) -> None:
    """Run a webhook worker until it has dealt with ``messages`` messages published to its topic."""
    dealt_with = asyncio.Event()

    async def on_progress(position: Position) -> None:
        if position.sequence_number > messages:
            dealt_with.set()

    async def backoff(seconds: float) -> None:
        clock.advance(BACKOFF)

    worker = WebhookWorker(
        service,
        Webhook(CACHE, "hook", TOPIC, "http://127.0.0.1:9/hook", "secret"),
        endpoint,  # type: ignore[arg-type]
        RetryPolicy(max_attempts=2),
        sleep=backoff,
        on_progress=on_progress,
    )
    await worker.open()
    running = asyncio.create_task(worker.run())
    try:
        for number in range(messages):
            await service.publish(CACHE, TOPIC, f"m{number}")
        async with asyncio.timeout(30):
            await dealt_with.wait()
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


def _lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [(r.levelname, r.getMessage()) for r in caplog.records if r.name == WEBHOOK_LOGGER]


async def test_webhook_outage_logs_a_start_a_reminder_a_minute_and_the_recovery(
    service: TopicsService, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    # Arrange: 50 messages each given up after 2 failed attempts (100 failures, 150 s), then one delivered
    caplog.set_level(logging.INFO, WEBHOOK_LOGGER)
    endpoint = ScriptedEndpoint(failures=100)

    # Act
    await _deliver(service, clock, endpoint, messages=51)

    # Assert
    lines = _lines(caplog)
    assert endpoint.posts == 101
    assert [level for level, _ in lines] == ["WARNING", "WARNING", "WARNING", "INFO"], lines
    assert lines[0][1].startswith("webhook 'hook' of cache 'cache' is failing: delivery of message 1 ")
    assert lines[0][1].endswith("failed (connection); retrying with backoff")
    assert all(" is still failing: " in message and " in the last 60 s " in message for _, message in lines[1:3])
    assert lines[3][1] == (
        "webhook 'hook' of cache 'cache' works again after 100 failures (messages given up: 50) in 150.0 s"
    )
