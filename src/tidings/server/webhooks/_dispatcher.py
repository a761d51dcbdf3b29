"""The webhook dispatcher: one delivery task per webhook, started, updated and stopped as the registry says."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import NamedTuple

from tidings.server.core import TopicsService, Webhook
from tidings.server.webhooks._http import WebhookSender
from tidings.server.webhooks._retry import RetryPolicy
from tidings.server.webhooks._stats import WebhookStats
from tidings.server.webhooks._worker import WebhookWorker

logger = logging.getLogger("tidings.server.webhooks")


class WebhookStatus(NamedTuple):
    """One webhook's counters and current lag (messages published and not yet delivered)."""

    webhook: Webhook
    stats: WebhookStats
    lag: int


class WebhookDispatcher:
    """Runs a `WebhookWorker` task per webhook (it is the registry's `WebhookListener`).

    Workers share one `WebhookSender` (one connection pool) and nothing else: a slow endpoint holds only its
    own webhook's task, and a publish only wakes the workers' subscriptions, like any subscriber's.
    """

    def __init__(
        self,
        service: TopicsService,
        sender: WebhookSender,
        policy: RetryPolicy | None = None,
        *,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._service = service
        self._sender = sender
        self._policy = policy or RetryPolicy()
        self._wall_clock = wall_clock
        self._sleep = sleep
        self._workers: dict[tuple[str, str], tuple[WebhookWorker, asyncio.Task[None]]] = {}
        self._ending: set[asyncio.Task[None]] = set()
        self._closed = False

    async def webhook_put(self, webhook: Webhook) -> None:
        """Start delivering ``webhook``, or apply its new URL or secret (a new topic restarts it, live).

        A new worker has subscribed by the time this returns: every message published after it is delivered.
        """
        if self._closed:
            return
        key = (webhook.cache_name, webhook.name)
        running = self._workers.get(key)
        if running is not None and running[0].webhook.topic_name == webhook.topic_name:
            running[0].webhook = webhook
            return
        if running is not None:
            self._stop(key)
        worker = WebhookWorker(
            self._service, webhook, self._sender, self._policy, wall_clock=self._wall_clock, sleep=self._sleep
        )
        await worker.open()
        if self._closed or key in self._workers:  # closed, or put again, while subscribing
            worker.discard()
            return
        task = asyncio.create_task(worker.run(), name=f"tidings-webhook-{webhook.cache_name}-{webhook.name}")
        task.add_done_callback(lambda done: self._ended(key, worker, done))
        self._workers[key] = (worker, task)

    def webhook_deleted(self, cache_name: str, name: str) -> None:
        """Stop delivering the webhook (a delivery in flight is abandoned)."""
        self._stop((cache_name, name))

    def statuses(self) -> list[WebhookStatus]:
        """Every running webhook's counters and lag, sorted by (cache, name)."""
        return [
            WebhookStatus(worker.webhook, worker.stats, worker.lag)
            for _, (worker, _task) in sorted(self._workers.items())
        ]

    async def close(self) -> None:
        """Stop every worker, wait for them, and close the connection pool; idempotent."""
        if self._closed:
            return
        self._closed = True
        for key in list(self._workers):
            self._stop(key)
        ending = list(self._ending)
        for task in ending:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._sender.close()

    def _stop(self, key: tuple[str, str]) -> None:
        running = self._workers.pop(key, None)
        if running is None:
            return
        task = running[1]
        task.cancel()
        self._ending.add(task)
        task.add_done_callback(self._ending.discard)

    def _ended(self, key: tuple[str, str], worker: WebhookWorker, task: asyncio.Task[None]) -> None:
        worker.discard()  # a task cancelled before it ran never used the subscription `open` made
        running = self._workers.get(key)
        if running is not None and running[1] is task:
            del self._workers[key]
        if not task.cancelled() and task.exception() is not None:
            logger.error("webhook %r of cache %r died", key[1], key[0], exc_info=task.exception())
