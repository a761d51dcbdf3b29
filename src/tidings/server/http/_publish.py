"""``POST /topics/{cache}/{topic}``: publish the request body.

``text/plain`` (UTF-8; a ``charset`` parameter, if any, must say so) publishes text and
``application/octet-stream`` binary; any other Content-Type is 415, so a client that sends JSON or a form by
mistake learns why instead of publishing something it did not mean to. The body is read as it arrives and
refused (413) as soon as it passes the message size limit, so an oversized body is never held whole.
"""

from __future__ import annotations

from time import perf_counter

from starlette.requests import Request
from starlette.responses import Response

from tidings.server.core import InvalidArgument, Limit, LimitExceeded, TopicsService, TransportStats
from tidings.server.http._auth import Authenticate, authorize
from tidings.server.http._errors import UnsupportedMediaType
from tidings.server.http._live import ClientGone

TEXT = "text/plain"
BINARY = "application/octet-stream"
_UTF8 = ("utf-8", "utf8")
# Every successful publish gets this same (immutable) response.
_PUBLISHED = Response(status_code=204)


def is_text(content_type: str | None) -> bool:
    """Whether a publish with this Content-Type is text (else binary); `UnsupportedMediaType` if neither."""
    media_type, _, parameters = (content_type or "").partition(";")
    media_type = media_type.strip().lower()
    if media_type == BINARY:
        return False
    if media_type == TEXT:
        for parameter in parameters.split(";"):
            key, _, value = parameter.partition("=")
            if key.strip().lower() == "charset" and value.strip().strip('"').lower() not in _UTF8:
                raise UnsupportedMediaType("text/plain must be UTF-8 (charset=utf-8)")
        return True
    raise UnsupportedMediaType(f"Content-Type must be {TEXT} (UTF-8) or {BINARY}")


def _too_large(size: int, limit: int) -> LimitExceeded:
    return LimitExceeded(Limit.REQUEST_SIZE, f"message of {size} bytes exceeds the limit of {limit} bytes")


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with `LimitExceeded` as soon as it is known to be longer than ``limit``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(int(declared), limit)
    receive = request.receive
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk: bytes = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise _too_large(size, limit)
            chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def publish(
    request: Request,
    service: TopicsService,
    stats: TransportStats,
    authenticate: Authenticate,
    cache: str,
    topic: str,
) -> Response:
    """Publish the body as one message (its publisher id is the caller's token id); 204."""
    started = perf_counter()
    principal = authorize(request, authenticate)
    text = is_text(request.headers.get("content-type"))
    body = await read_body(request, service.limits.max_message_bytes)
    value: str | bytes = body
    if text:
        try:
            value = body.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidArgument("a text/plain body must be valid UTF-8") from None
    await service.publish(cache, topic, value, principal)
    stats.publishes += 1
    stats.publish_latency.observe(perf_counter() - started)
    return _PUBLISHED
