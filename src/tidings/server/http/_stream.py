"""``GET /topics/{cache}/{topic}/events``: the topic as Server-Sent Events, for browsers' ``EventSource``.

Events: ``heartbeat`` (first, and on idle streams, from the core's ticker), ``item`` and ``discontinuity``,
each with a JSON ``data`` line; items and discontinuities have the id ``PAGE:SEQ``. A reconnecting
EventSource sends the last id as ``Last-Event-ID`` and resumes after it, without loss or repeats while the
topic's retention covers the gap. A first connection can resume with ``?last_event_id=PAGE:SEQ`` or
``?sequence_number=N&sequence_page=P``; with none of them it starts with the newest retained messages
(``--subscribe-latest``), as every subscribe without a position does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from tidings.server.core import InvalidArgument, Position, TopicCursor, TopicsError, TopicsService, TransportStats
from tidings.server.http._auth import Authenticate, authorize
from tidings.server.http._encoding import SSE_ENCODER, parse_event_id
from tidings.server.http._errors import logger
from tidings.server.http._live import ClientGone, LiveRequests
from tidings.server.http._params import query_uint64

_HEADERS = (
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    # Tell reverse proxies (nginx) not to buffer the stream.
    (b"x-accel-buffering", b"no"),
)


def resume_point(request: Request) -> Position:
    """Where to subscribe from: ``Last-Event-ID`` header, else ``?last_event_id=``, else the query's N and P."""
    event_id = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
    if event_id:
        try:
            return parse_event_id(event_id)
        except ValueError:
            raise InvalidArgument("Last-Event-ID must be PAGE:SEQ, as sent in event ids") from None
    return Position(query_uint64(request, "sequence_page"), query_uint64(request, "sequence_number"))


class BodyWriter:
    """An SSE response's `Writer`: one body chunk per batch (ASGI's ``send`` is always awaited)."""

    __slots__ = ("_send",)

    def __init__(self, send: Send) -> None:
        self._send = send

    def try_write(self, chunks: Sequence[bytes]) -> bool:
        """Never: ``send`` must be awaited."""
        return False

    def write_all(self, chunks: Sequence[bytes]) -> Awaitable[None]:
        """Send the batch's frames as one body chunk."""
        return self._send({"type": "http.response.body", "body": b"".join(chunks), "more_body": True})


class EventStream(Response):
    """A response that streams a subscription until the client leaves, the topic ends or the server stops."""

    def __init__(self, subscription: TopicCursor, stats: TransportStats, live: LiveRequests):
        self._subscription = subscription
        self._stats = stats
        self._live = live

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        with self._subscription:
            await send({"type": "http.response.start", "status": 200, "headers": list(_HEADERS)})
            try:
                await self._live.run(receive, self._subscription.deliver(BodyWriter(send), SSE_ENCODER, self._stats))
            except ClientGone:
                return
            except TopicsError:
                pass  # cache deleted or shutting down: end the stream; EventSource reconnects (and learns which)
            except Exception:
                logger.exception("unexpected fault in an event stream")
            await send({"type": "http.response.body", "body": b"", "more_body": False})


async def stream(
    request: Request,
    service: TopicsService,
    stats: TransportStats,
    authenticate: Authenticate,
    live: LiveRequests,
    cache: str,
    topic: str,
) -> Response:
    """Subscribe (errors are JSON responses, before the stream starts) and return the event stream."""
    principal = authorize(request, authenticate)
    subscription = await service.subscribe(cache, topic, resume_point(request), principal)
    return EventStream(subscription, stats, live)
