"""The one place domain errors become HTTP statuses (docs/http.md *Errors*).

Every error response of the HTTP API has the body ``{"error": {"code": ..., "message": ...}}``. The codes are
the gRPC status names in lower case (``invalid_argument``, ``not_found``, ...), except that a `LimitExceeded`
carries its limit's ``err`` value (``request_size_limit_exceeded``, ...), as gRPC clients see it in metadata.

Four errors exist only at this transport, subclasses of the core's `InvalidArgument` and `PermissionDenied`::

    InvalidArgument
    ├── UnsupportedMediaType   a publish with a Content-Type other than text/plain or application/octet-stream
    ├── NoRoute                no endpoint at this path (or not with this method)
    └── MisdirectedRequest     a Host this server does not answer for (--allowed-hosts)
    PermissionDenied
    └── CrossOriginRefused     a browser's state-changing request from another origin (--cors-origins)
"""

from __future__ import annotations

import logging
from typing import Final

from starlette.responses import Response
from starlette.types import Scope

from tidings.server.core import (
    CacheAlreadyExists,
    CacheNotFound,
    InvalidArgument,
    Limit,
    LimitExceeded,
    OutcomeUnknown,
    PermissionDenied,
    TransportStats,
    Unauthenticated,
    Unavailable,
    WebhookNotFound,
)
from tidings.server.http._encoding import encode_error

logger = logging.getLogger("tidings.server.http")

INTERNAL_MESSAGE: Final = "internal server error; the server log has the details"
# How long a client should wait before retrying after a 503 (seconds).
RETRY_AFTER: Final = "1"


class UnsupportedMediaType(InvalidArgument):
    """A publish whose Content-Type is neither ``text/plain`` (UTF-8) nor ``application/octet-stream``."""


class NoRoute(InvalidArgument):
    """No endpoint answers this path and method; ``status`` is 404 or 405."""

    def __init__(self, message: str, status: int, allow: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.allow = allow


class MisdirectedRequest(InvalidArgument):
    """The ``Host`` header names a host this server does not answer for (421)."""


class CrossOriginRefused(PermissionDenied):
    """A state-changing request from a web page of another origin, which is not allowed (403)."""


_LIMIT_STATUS: Final = {
    Limit.REQUEST_SIZE: 413,
    Limit.TOPIC_SUBSCRIPTIONS: 429,
    Limit.OPERATIONS_RATE: 429,
    Limit.CACHE_COUNT: 429,
    Limit.TOPIC_COUNT: 429,
}


def status_of(error: Exception) -> tuple[int, str, str]:
    """The HTTP status, error code and client-safe message for ``error`` (any exception)."""
    if isinstance(error, NoRoute):
        return error.status, "not_found" if error.status == 404 else "method_not_allowed", error.message
    if isinstance(error, MisdirectedRequest):
        return 421, "misdirected_request", error.message
    if isinstance(error, UnsupportedMediaType):
        return 415, "unsupported_media_type", error.message
    if isinstance(error, InvalidArgument):
        return 400, "invalid_argument", error.message
    if isinstance(error, Unauthenticated):
        return 401, "unauthenticated", error.message
    if isinstance(error, PermissionDenied):
        return 403, "permission_denied", error.message
    if isinstance(error, CacheNotFound | WebhookNotFound):
        return 404, "not_found", error.message
    if isinstance(error, CacheAlreadyExists):
        return 409, "already_exists", error.message
    if isinstance(error, LimitExceeded):
        return _LIMIT_STATUS[error.limit], error.limit.value, error.message
    if isinstance(error, OutcomeUnknown):  # before its base: it may have been applied, unlike a 503
        return 504, "deadline_exceeded", error.message
    if isinstance(error, Unavailable):
        return 503, "unavailable", error.message
    return 500, "internal", INTERNAL_MESSAGE


def error_response(error: Exception, stats: TransportStats | None = None, scope: Scope | None = None) -> Response:
    """The JSON error response for ``error`` to the request of ``scope``, counted in ``stats``; unexpected faults
    are logged as errors (not leaked), the others at DEBUG with the client's address and the reason."""
    status, code, message = status_of(error)
    if status == 500:
        logger.error("unexpected fault in the HTTP API", exc_info=error)
    elif logger.isEnabledFor(logging.DEBUG):
        logger.debug("%s answered %d %s: %s", _request_line(scope), status, code, message)
    if stats is not None:
        stats.errors[str(status)] += 1
    headers: dict[str, str] = {}
    if status in (429, 503):
        headers["retry-after"] = RETRY_AFTER
    elif status == 413:
        # The rest of an oversized body is not read: the connection cannot be reused.
        headers["connection"] = "close"
    elif isinstance(error, NoRoute) and error.allow:
        headers["allow"] = error.allow
    return Response(encode_error(code, message), status, headers, media_type="application/json")


def _request_line(scope: Scope | None) -> str:
    """``POST /topics/c/t from 127.0.0.1:5000``, for the log: never the query string or a header (where tokens
    are)."""
    if scope is None:
        return "a request"
    client = scope.get("client")
    peer = f"{client[0]}:{client[1]}" if client else "an unknown client"
    return f"{scope.get('method', '')} {scope.get('path', '')} from {peer}"
