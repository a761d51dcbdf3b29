"""``GET /topics/{cache}/{topic}?sequence_number=N&sequence_page=P``: long-poll.

Subscribes from (N, P) with PROTOCOL.md's resume rules, waits until at least one item or discontinuity is
available or the configured wait ends (then ``{"items": []}``), and answers with everything available by
then, up to `MAX_READS` reads of the topic (``READ_BATCH`` = 32 items each, so at most 128 items, plus
discontinuities). A client loops, passing back the last sequence number + 1 and its page.
"""

from __future__ import annotations

import asyncio
from typing import Final

from starlette.requests import Request
from starlette.responses import Response

from tidings.server.core import HEARTBEAT, Discontinuity, Event, Message, Subscription, TopicsService, TransportStats
from tidings.server.http._auth import authorize
from tidings.server.http._encoding import encode_poll
from tidings.server.http._live import LiveRequests
from tidings.server.http._params import query_uint64

# Reads of the topic one response may hold.
MAX_READS: Final = 4


async def available_now(subscription: Subscription) -> list[Event] | None:
    """The subscription's next batch if it has one without waiting, else None (nothing is consumed)."""
    attempt = asyncio.create_task(subscription.next_events())
    # One loop turn lets the attempt take its first step: it either returns (events were there) or waits.
    await asyncio.sleep(0)
    if attempt.done():
        return attempt.result()
    attempt.cancel()  # a cancelled read leaves the subscription's cursor where it was
    await asyncio.wait({attempt})
    return None


async def first_events(subscription: Subscription, max_wait: float) -> list[Event]:
    """Items and discontinuities as soon as there are some (and what follows at once), or ``[]`` after
    ``max_wait`` seconds."""
    try:
        async with asyncio.timeout(max_wait):
            while True:
                events = await subscription.next_events()
                if events[0] is not HEARTBEAT:
                    break
    except TimeoutError:
        return []
    for _ in range(MAX_READS - 1):
        more = await available_now(subscription)
        if more is None:
            break
        events += more
    return events


def count(stats: TransportStats, events: list[Event], now: float) -> None:
    """Count a delivered batch in ``stats``."""
    if not events:
        return
    discontinuities = sum(type(event) is Discontinuity for event in events)
    stats.discontinuities += discontinuities
    last = events[-1]
    if type(last) is Message:
        stats.deliveries += len(events) - discontinuities
        stats.delivery_latency.observe(now - last.published_at)


async def poll(
    request: Request,
    service: TopicsService,
    stats: TransportStats,
    live: LiveRequests,
    max_wait: float,
    cache: str,
    topic: str,
) -> Response:
    """Answer the long-poll: 200 with ``{"items": [...]}``."""
    authorize(request)
    resume_at = query_uint64(request, "sequence_number")
    sequence_page = query_uint64(request, "sequence_page")
    with await service.subscribe(cache, topic, resume_at, sequence_page) as subscription:
        events = await live.run(request.receive, first_events(subscription, max_wait))
    count(stats, events, service.clock())
    return Response(encode_poll(events), media_type="application/json", headers={"cache-control": "no-store"})
