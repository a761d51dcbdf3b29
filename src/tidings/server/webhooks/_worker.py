"""One webhook's delivery: a live subscription of its topic, each message POSTed in order, one at a time.

The worker is the subscription's `Writer` (the core delivers to it): its chunks are the events themselves, and
writing one POSTs it, with retries, before the next.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

from tidings.server.core import (
    ANONYMOUS,
    HEARTBEAT,
    CacheNotFound,
    Discontinuity,
    Encoder,
    Event,
    FailureLog,
    Message,
    Position,
    TopicCursor,
    TopicsError,
    TopicsService,
)
from tidings.server.webhooks._events import event_body
from tidings.server.webhooks._http import WebhookSender
from tidings.server.webhooks._registry import Webhook
from tidings.server.webhooks._retry import Outcome, RetryPolicy, Verdict, deliver_with_retries
from tidings.server.webhooks._stats import WebhookStats
from tidings.webhooks import sign

logger = logging.getLogger("tidings.server.webhooks")

NO_POSITION: Final = Position(0, 0)


def _as_is(event: Event) -> Event:
    return event


# A webhook's chunks are the events: each POST is built when it is sent (its timestamps are the delivery's).
EVENTS: Final[Encoder[Event]] = Encoder(_as_is, _as_is, HEARTBEAT)


class WebhookWorker:
    """Delivers one webhook: a server-side subscriber whose cursor only moves past a message once the endpoint
    took it (or it was given up on), so delivery is in order and at least once.

    ``webhook`` may be replaced while running (a new URL or secret applies from the next attempt on).
    """

    def __init__(
        self,
        service: TopicsService,
        webhook: Webhook,
        sender: WebhookSender,
        policy: RetryPolicy,
        *,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        resume: Position | None = None,
        on_progress: Callable[[Position], Awaitable[object]] | None = None,
    ) -> None:
        self.webhook = webhook
        self.stats = WebhookStats()
        self._service = service
        self._sender = sender
        self._policy = policy
        self._wall_clock = wall_clock
        self._sleep = sleep
        self._subscription: TopicCursor | None = None
        self._opened: TopicCursor | None = None  # subscribed by `open`, not followed yet
        self._held = 0  # messages read from the subscription and not yet delivered
        self._broken = 0  # subscriptions in a row that broke before delivering anything (the backoff)
        # Where to resume (a takeover, or after the subscription broke): the next message's position.
        self._resume = resume or NO_POSITION
        self._resumed = resume is not None
        # Told each new position, to store it for a takeover by another node.
        self._on_progress = on_progress
        # A dead endpoint fails every attempt: its log is a line when that starts, one a minute, one when it ends.
        self._failure_log = FailureLog(
            logger,
            f"webhook {webhook.name!r} of cache {webhook.cache_name!r}",
            lost_noun="messages given up",
            clock=service.clock,
        )

    @property
    def lag(self) -> int:
        """Messages published to the topic and not yet delivered."""
        subscription = self._subscription
        return self._held + (0 if subscription is None else subscription.backlog)

    async def open(self) -> None:
        """Subscribe now, so that `run` delivers every message published from here on (a failure is left to
        `run`, which retries)."""
        try:
            self._opened = await self._subscribe()
        except TopicsError:
            self._opened = None
            return
        if not self._resumed:  # a new webhook starts here: a takeover must not start later
            self._resume = Position(self._opened.sequence_page, self._opened.next_sequence_number)
            await self._progress()

    def discard(self) -> None:
        """Free what `open` took, for a worker that will not run."""
        if self._opened is not None:
            self._opened.close()
            self._opened = None

    async def _subscribe(self) -> TopicCursor:
        webhook = self.webhook
        return await self._service.subscribe(
            webhook.cache_name,
            webhook.topic_name,
            self._resume,
            ANONYMOUS,
            latest=0,  # a webhook starts live: it never asked for history
        )

    async def run(self) -> None:
        """Deliver until cancelled or the cache is deleted; a broken subscription is resumed where it stopped."""
        while True:
            webhook = self.webhook
            try:
                subscription, self._opened = self._opened or await self._subscribe(), None
                with subscription:
                    self._subscription = subscription
                    try:
                        await subscription.deliver(self, EVENTS)
                    finally:
                        self._subscription = None
            except CacheNotFound:
                logger.info("webhook %r of cache %r stops: the cache is gone", webhook.name, webhook.cache_name)
                return
            except TopicsError as error:
                self._broken += 1
                delay = self._policy.delay(self._broken, random.random())
                logger.warning(
                    "webhook %r of cache %r cannot follow topic %r (%s); again in %.1f s",
                    webhook.name, webhook.cache_name, webhook.topic_name, error.message, delay,
                )  # fmt: skip
                await self._sleep(delay)

    def try_write(self, chunks: Sequence[Event]) -> bool:
        """Never: each message is POSTed, and waited for, in turn (`write_all`)."""
        return False

    async def write_all(self, chunks: Sequence[Event]) -> None:
        """Deliver a batch of the subscription's events, in order: each message POSTed (with retries) and the
        position recorded after it; a discontinuity is logged and recorded; heartbeats only show it works."""
        self._broken = 0  # the subscription works: a later break starts the backoff over
        self._held = sum(isinstance(event, Message) for event in chunks)
        for event in chunks:
            if isinstance(event, Message):
                await self._deliver(event)
                self._held -= 1
                self._resume = Position(event.sequence_page, event.sequence_number + 1)
                await self._progress()
            elif isinstance(event, Discontinuity):
                self._record_gap(event)
                await self._progress()

    async def _progress(self) -> None:
        if self._on_progress is None:
            return
        try:
            await self._on_progress(self._resume)
        except Exception as error:  # the position is kept here; a later save records it
            logger.warning("webhook %r: could not record its position: %s", self.webhook.name, error)

    def _record_gap(self, gap: Discontinuity) -> None:
        resume_page = self._resume.sequence_page
        self._resume = Position(gap.new_sequence_page, gap.new_topic_sequence + 1)
        same_page = resume_page in (0, gap.new_sequence_page)
        missed = gap.new_topic_sequence - gap.last_topic_sequence if same_page else 0
        if same_page and missed <= 0:
            return  # nothing was lost (a resume that found the topic where it left it)
        webhook = self.webhook
        self.stats.discontinuities += 1
        self.stats.missed_messages += max(0, missed)
        logger.warning(
            "webhook %r of cache %r skipped ahead on topic %r: %s (from sequence %d to %d, page %d)",
            webhook.name, webhook.cache_name, webhook.topic_name,
            f"{missed} messages left the retention buffer undelivered" if same_page else "the topic was reset",
            gap.last_topic_sequence, gap.new_topic_sequence + 1, gap.new_sequence_page,
        )  # fmt: skip

    async def _deliver(self, message: Message) -> None:
        webhook = self.webhook
        now = self._wall_clock()
        age = max(0.0, self._service.clock() - message.published_at)
        body = event_body(webhook.cache_name, webhook.topic_name, message, round((now - age) * 1000), round(now * 1000))

        signed = ("", "")  # (secret, signature): signed once per message and secret

        def attempt() -> Awaitable[Outcome]:
            nonlocal signed
            current = self.webhook  # a rotated secret or a new URL applies at once
            if signed[0] != current.secret or not signed[1]:
                signed = (current.secret, sign(body, current.secret))
            return self._sender.post(current.url, body, signed[1])

        def failed(outcome: Outcome, retrying: bool) -> None:
            self.stats.failures[outcome.reason] += 1
            if retrying:
                self.stats.retries += 1
                reason = f"delivery of message {message.sequence_number} (page {message.sequence_page}) failed"
                self._failure_log.failed(f"{reason} ({outcome.reason}); retrying with backoff")
            else:
                reason = f"gave up on message {message.sequence_number} (page {message.sequence_page})"
                self._failure_log.failed(f"{reason} of topic {webhook.topic_name!r}: {outcome.reason}", lost=1)

        def back_off(seconds: float) -> Awaitable[None]:
            return self._sender.back_off(self.webhook.url, seconds, self._sleep)

        outcome = await deliver_with_retries(
            attempt, self._policy, clock=self._service.clock, sleep=back_off, on_failure=failed
        )
        if outcome.verdict is Verdict.DELIVERED:
            self.stats.delivered += 1
            self._failure_log.succeeded()
            return
        self.stats.dropped += 1  # logged by `failed`, counted in the failure log's lines
