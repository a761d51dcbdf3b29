"""``GET /topics/{cache}/{topic}?sequence_number=N&sequence_page=P``: long-poll.

Subscribes from (N, P) with the protocol's resume rules (README *Subscriptions, resume and discontinuities*),
waits until at least one item or discontinuity is available or the configured wait ends (then
``{"items": []}``), and answers with everything available by then, up to `MAX_READS` reads of the topic
(``READ_BATCH`` = 32 items each, so at most 128 items, plus discontinuities). A client loops, passing back
the last sequence number + 1 and its page.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Final

from starlette.requests import Request
from starlette.responses import Response

from tidings.server.core import Position, TopicCursor, TopicsService, TransportStats
from tidings.server.http._auth import Authenticate, authorize
from tidings.server.http._encoding import POLL_ENCODER, poll_body
from tidings.server.http._live import LiveRequests
from tidings.server.http._params import query_uint64

# Reads of the topic one response may hold.
MAX_READS: Final = 4


class Answer:
    """A long poll's `Writer`: it takes the first batch, which becomes the response's entries."""

    __slots__ = ("entries",)

    def __init__(self) -> None:
        self.entries: list[bytes] = []

    def try_write(self, chunks: Sequence[bytes]) -> bool:
        """Take the batch now (a response is built once it is whole)."""
        self.entries += chunks
        return True

    async def write_all(self, chunks: Sequence[bytes]) -> None:
        """Take the batch (never waits)."""
        self.entries += chunks


async def first_entries(subscription: TopicCursor, stats: TransportStats, max_wait: float) -> list[bytes]:
    """Items and discontinuities as soon as there are some (with what else is there at once), or ``[]``
    after ``max_wait`` seconds."""
    answer = Answer()
    try:
        async with asyncio.timeout(max_wait):
            await subscription.deliver_first(answer, POLL_ENCODER, stats, MAX_READS)
    except TimeoutError:
        return []
    return answer.entries


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
    resume_at = Position(query_uint64(request, "sequence_page"), query_uint64(request, "sequence_number"))
    with await service.subscribe(cache, topic, resume_at, principal) as subscription:
        entries = await live.run(request.receive, first_entries(subscription, stats, max_wait))
    return Response(poll_body(entries), media_type="application/json", headers={"cache-control": "no-store"})
