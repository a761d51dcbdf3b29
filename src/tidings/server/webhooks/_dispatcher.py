"""The webhook dispatcher: one delivery task per webhook, started, updated and stopped as the registry says.

Each webhook is delivered by the node holding its lease (`Leases`). With several nodes on one Redis
(`WebhookLeases`) a node delivers the webhooks whose leases it holds, extends them, seeks the free ones, and
records each webhook's cursor, so that when a node stops (or dies, and its leases run out) another resumes where
it stopped; a server alone holds every lease (`SoleNodeLeases`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import NamedTuple

from tidings.server.core import FailureLog, Position, TopicsService
from tidings.server.webhooks._http import WebhookSender
from tidings.server.webhooks._leases import Leases
from tidings.server.webhooks._registry import Webhook
from tidings.server.webhooks._retry import RetryPolicy
from tidings.server.webhooks._stats import WebhookStats
from tidings.server.webhooks._worker import WebhookWorker

logger = logging.getLogger("tidings.server.webhooks")

Key = tuple[str, str]


class WebhookStatus(NamedTuple):
    """One webhook's counters and current lag (messages published and not yet delivered)."""

    webhook: Webhook
    stats: WebhookStats
    lag: int


class WebhookDispatcher:
    """Runs a `WebhookWorker` task per webhook this node delivers (it is the registry's `WebhookListener`).

    Workers share one `WebhookSender` (one connection pool) and nothing else: a slow endpoint holds only its
    own webhook's task, and a publish only wakes the workers' subscriptions, like any subscriber's.
    """

    def __init__(
        self,
        service: TopicsService,
        sender: WebhookSender,
        policy: RetryPolicy | None = None,
        *,
        leases: Leases,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._service = service
        self._sender = sender
        self._policy = policy or RetryPolicy()
        self._leases = leases
        self._wall_clock = wall_clock
        self._sleep = sleep
        self._webhooks: dict[Key, Webhook] = {}  # every webhook the registry knows
        self._workers: dict[Key, tuple[WebhookWorker, asyncio.Task[None]]] = {}
        self._renewed: dict[Key, float] = {}  # when each held lease was last extended (monotonic)
        self._ending: set[asyncio.Task[None]] = set()
        self._lease_keeper: asyncio.Task[None] | None = None
        self._closed = False
        # Redis unreachable fails every lease operation of every webhook: one outage, logged as one. Each webhook
        # takes part on its own (``by``), so one webhook failing while the others work is one outage too.
        self._lease_log = FailureLog(logger, "keeping the leases of webhooks", clock=service.clock)

    def start(self) -> None:
        """Start extending held leases and seeking free ones (until `close`)."""
        if self._lease_keeper is None:
            self._lease_keeper = asyncio.create_task(self._keep_leases(self._leases), name="tidings-webhook-leases")

    async def webhook_put(self, webhook: Webhook) -> None:
        """Start delivering ``webhook`` (if this node may), or apply its new URL or secret (a new topic restarts
        it, live).

        A new worker has subscribed by the time this returns: every message published after it is delivered.
        """
        if self._closed:
            return
        key = (webhook.cache_name, webhook.name)
        self._webhooks[key] = webhook
        running = self._workers.get(key)
        if running is not None and running[0].webhook.topic_name == webhook.topic_name:
            running[0].webhook = webhook
            return
        if running is not None:
            self._stop(key)
        await self._try_start(key)

    def webhook_deleted(self, cache_name: str, name: str) -> None:
        """Stop delivering the webhook (a delivery in flight is abandoned)."""
        self._webhooks.pop((cache_name, name), None)
        self._stop((cache_name, name))  # the store dropped its lease with it
        self._lease_log.succeeded(by=(cache_name, name))  # nothing of it fails any more

    def statuses(self) -> list[WebhookStatus]:
        """The counters and lag of every webhook this node delivers, sorted by (cache, name)."""
        return [
            WebhookStatus(worker.webhook, worker.stats, worker.lag)
            for _, (worker, _task) in sorted(self._workers.items())
        ]

    async def close(self) -> None:
        """Stop every worker, give their leases up, wait for them, and close the connection pool; idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._lease_keeper is not None:
            self._lease_keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._lease_keeper
        held = list(self._workers)
        for key in held:
            self._stop(key)
        for task in list(self._ending):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._drop_leases(self._leases, held)
        await self._sender.close()

    async def _drop_leases(self, leases: Leases, held: list[Key]) -> None:
        """Give the leases of ``held`` up (after their workers stopped, so none records a position after this);
        those that fail (Redis unreachable) run out by themselves, and are logged in one line."""
        kept: list[str] = []
        failure = ""
        for key in held:
            try:
                await leases.drop(*key)
            except Exception as error:
                kept.append(repr(key[1]))
                failure = str(error)
        if kept:
            logger.warning(
                "could not give up the leases of %d webhooks (%s%s): %s; they run out within %g s",
                len(kept),
                ", ".join(kept[:3]),
                ", ..." if len(kept) > 3 else "",
                failure,
                leases.ttl,
            )

    async def _try_start(self, key: Key) -> None:
        webhook = self._webhooks[key]
        leases = self._leases
        try:
            if not await leases.take(*key):
                self._lease_log.succeeded(by=key)
                return  # another node delivers it
            self._renewed[key] = time.monotonic()
            resume = await leases.cursor(*key)
        except Exception as error:
            self._lease_log.failed(f"webhook {key[1]!r} of cache {key[0]!r}: no lease ({error}); will retry", by=key)
            return
        self._lease_log.succeeded(by=key)
        if self._closed or key in self._workers or self._webhooks.get(key) != webhook:
            return  # changed meanwhile: the next round starts what is current
        leases.taken(*key)

        async def record(position: Position) -> None:
            if not await leases.save(*key, position.sequence_page, position.sequence_number):
                raise RuntimeError("the lease is another node's now")

        worker = WebhookWorker(
            self._service,
            webhook,
            self._sender,
            self._policy,
            wall_clock=self._wall_clock,
            sleep=self._sleep,
            resume=None if resume is None else Position(*resume),
            on_progress=record,
        )
        await worker.open()
        if self._closed or key in self._workers or key not in self._webhooks:  # changed while subscribing
            worker.discard()
            return
        task = asyncio.create_task(worker.run(), name=f"tidings-webhook-{key[0]}-{key[1]}")
        task.add_done_callback(lambda done: self._ended(key, worker, done))
        self._workers[key] = (worker, task)

    async def _keep_leases(self, leases: Leases) -> None:
        """Extend held leases (a worker whose lease is lost stops) and take free ones, when the leases say."""
        while True:
            await leases.wait_renewal()
            for key in list(self._workers):
                try:
                    held = await leases.take(*key)
                except Exception as error:
                    # Redis unreachable: keep delivering while the lease may still run, then stop.
                    held = time.monotonic() - self._renewed.get(key, 0.0) < leases.ttl
                    self._lease_log.failed(f"could not extend the lease of webhook {key[1]!r}: {error}", by=key)
                else:
                    self._lease_log.succeeded(by=key)
                    if held:
                        self._renewed[key] = time.monotonic()
                if not held and key in self._workers:
                    logger.warning("webhook %r of cache %r: lease lost; another node delivers it", key[1], key[0])
                    self._stop(key)
            for key in [key for key in self._webhooks if key not in self._workers]:
                await self._try_start(key)

    def _stop(self, key: Key) -> None:
        self._renewed.pop(key, None)
        running = self._workers.pop(key, None)
        if running is None:
            return
        task = running[1]
        task.cancel()
        self._ending.add(task)
        task.add_done_callback(self._ending.discard)

    def _ended(self, key: Key, worker: WebhookWorker, task: asyncio.Task[None]) -> None:
        worker.discard()  # a task cancelled before it ran never used the subscription `open` made
        running = self._workers.get(key)
        if running is not None and running[1] is task:
            del self._workers[key]
        if not task.cancelled() and task.exception() is not None:
            logger.error("webhook %r of cache %r died", key[1], key[0], exc_info=task.exception())
