"""``GET /topics/{cache}/{topic}?sequence_number=N&sequence_page=P``: long-poll.

Subscribes from (N, P) with the protocol's resume rules (README *Subscriptions, resume and discontinuities*),
waits until at least one item or discontinuity is available or the configured wait ends (then
``{"items": []}``), and answers with everything available by then, up to `MAX_READS` reads of the topic
(``READ_BATCH`` = 32 items each, so at most 128 items, plus discontinuities). A client loops, passing back
the last sequence number + 1 and its page.
"""

from __future__ import annotations

import asyncio
from typing import Final

from starlette.requests import Request
from starlette.responses import Response

from tidings.server.core import HEARTBEAT, Event, Subscription, TopicsService, TransportStats
from tidings.server.http._auth import Authenticate, authorize
from tidings.server.http._encoding import encode_poll
from tidings.server.http._live import LiveRequests
from tidings.server.http._params import query_uint64

# Reads of the topic one response may hold.
MAX_READS: Final = 4


async def first_events(subscription: Subscription, max_wait: float) -> list[Event]:
    """Items and discontinuities as soon as there are some (with what else is there at once), or ``[]``
    after ``max_wait`` seconds."""
    poll = subscription.poll
    try:
        async with asyncio.timeout(max_wait):
            while True:
                events = poll()
                if events is None:
                    await subscription.wait()
                elif events[0] is not HEARTBEAT:
                    break
    except TimeoutError:
        return []
    for _ in range(MAX_READS - 1):
        more = poll()
        if more is None or more[0] is HEARTBEAT:
            break
        events += more
    return events


async def poll(
    request: Request,
    service: TopicsService,
    stats: TransportStats,
    authenticate: Authenticate,
    live: LiveRequests,
    max_wait: float,
    cache: str,
    topic: str,
) -> Response:
    """Answer the long-poll: 200 with ``{"items": [...]}``."""
    principal = authorize(request, authenticate)
    resume_at = query_uint64(request, "sequence_number")
    sequence_page = query_uint64(request, "sequence_page")
    with await service.subscribe(cache, topic, resume_at, sequence_page, principal) as subscription:
        events = await live.run(request.receive, first_events(subscription, max_wait))
    stats.count_delivered(events, service.clock())
    return Response(encode_poll(events), media_type="application/json", headers={"cache-control": "no-store"})
