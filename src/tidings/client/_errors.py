"""Errors as values: `ErrorCode`, the shared shape of every ``.Error`` response, and the one mapping to it.

Nothing in the SDK raises for a failure on the server or the network; each call returns its namespace's
``.Error`` (``TopicPublish.Error``, ``TopicSubscribe.Error``, ``TopicSubscriptionItem.Error``, ...), all of them
subclasses of `ErrorResponse`::

    ErrorResponse(error_code, message, inner_exception, limit)
    ├── TopicPublish.Error            ├── CreateCache.Error
    ├── TopicSubscribe.Error          ├── DeleteCache.Error
    ├── TopicSubscriptionItem.Error   ├── ListCaches.Error
    │                                 └── GenerateDisposableToken.Error

`error_from` is the only place where a gRPC status (or a timeout, or a cancellation) becomes an `ErrorCode`.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar, cast

import grpc


class ErrorCode(enum.Enum):
    """Why a call failed; one per gRPC status class the server answers (see the README's *Errors*)."""

    CACHE_NOT_FOUND = "cache_not_found"
    """The cache does not exist (or was deleted while subscribed)."""
    ALREADY_EXISTS = "already_exists"
    """A cache with that name exists."""
    INVALID_ARGUMENT = "invalid_argument"
    """A bad name or value, caught by the SDK before sending or by the server."""
    LIMIT_EXCEEDED = "limit_exceeded"
    """A server limit; `ErrorResponse.limit` says which (``request_size_limit_exceeded``, ...)."""
    AUTHENTICATION = "authentication"
    """The API key is missing, malformed, expired or revoked."""
    PERMISSION_DENIED = "permission_denied"
    """The API key is valid but does not allow this operation."""
    UNAVAILABLE = "unavailable"
    """The server cannot be reached or is shutting down; retrying later may succeed."""
    TIMEOUT = "timeout"
    """No answer within the client's timeout."""
    CANCELLED = "cancelled"
    """The call was cancelled: by `unsubscribe`, by closing the client, or by the server."""
    INTERNAL = "internal"
    """An unexpected fault in the server."""
    UNKNOWN = "unknown"
    """Anything else (an unexpected status or exception); ``inner_exception`` has the details."""


@dataclass(frozen=True, slots=True)
class ErrorResponse:
    """What every ``.Error`` response carries: an `ErrorCode`, a readable message and the cause.

    ``limit`` is the server's ``err`` code for `ErrorCode.LIMIT_EXCEEDED` (for example
    ``"request_size_limit_exceeded"``), else None.
    """

    error_code: ErrorCode
    message: str
    inner_exception: BaseException | None = field(default=None, compare=False, repr=False)
    limit: str | None = None


_ERROR_CODE_OF: Final[dict[grpc.StatusCode, ErrorCode]] = {
    grpc.StatusCode.NOT_FOUND: ErrorCode.CACHE_NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS: ErrorCode.ALREADY_EXISTS,
    grpc.StatusCode.INVALID_ARGUMENT: ErrorCode.INVALID_ARGUMENT,
    grpc.StatusCode.OUT_OF_RANGE: ErrorCode.INVALID_ARGUMENT,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ErrorCode.LIMIT_EXCEEDED,
    grpc.StatusCode.UNAUTHENTICATED: ErrorCode.AUTHENTICATION,
    grpc.StatusCode.PERMISSION_DENIED: ErrorCode.PERMISSION_DENIED,
    grpc.StatusCode.UNAVAILABLE: ErrorCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: ErrorCode.TIMEOUT,
    grpc.StatusCode.CANCELLED: ErrorCode.CANCELLED,
    grpc.StatusCode.INTERNAL: ErrorCode.INTERNAL,
}

AnyError = TypeVar("AnyError", bound=ErrorResponse)


# What grpcio says when a server refuses a request larger than its receive limit, before any handler runs
# (a tidings server's limit is its message size limit plus envelope room).
_GRPC_TOO_LARGE: Final = "Received message larger than max"
_REQUEST_SIZE: Final = "request_size_limit_exceeded"


def _trailing_err(error: grpc.aio.AioRpcError) -> str | None:
    for key, value in cast(Any, error.trailing_metadata()) or ():
        if key == "err":
            return value if isinstance(value, str) else value.decode("utf-8", "replace")
    return _REQUEST_SIZE if _GRPC_TOO_LARGE in (error.details() or "") else None


def error_from(error_type: type[AnyError], exception: BaseException) -> AnyError:
    """The ``error_type`` response describing ``exception``: the SDK's one status-to-`ErrorCode` mapping."""
    if isinstance(exception, grpc.aio.AioRpcError):
        status = exception.code()
        code = _ERROR_CODE_OF.get(status, ErrorCode.UNKNOWN)
        message = exception.details() or status.name
        limit = _trailing_err(exception) if code is ErrorCode.LIMIT_EXCEEDED else None
        if limit is not None:
            message = f"{message} ({limit})"
        return error_type(code, message, exception, limit)
    if isinstance(exception, TimeoutError):
        return error_type(ErrorCode.TIMEOUT, "no answer within the client timeout", exception)
    if isinstance(exception, asyncio.CancelledError):
        return error_type(ErrorCode.CANCELLED, "the call was cancelled", exception)
    return error_type(ErrorCode.UNKNOWN, f"{type(exception).__name__}: {exception}", exception)


def invalid_argument(error_type: type[AnyError], message: str) -> AnyError:
    """The ``error_type`` response for an argument the SDK refused before sending anything."""
    return error_type(ErrorCode.INVALID_ARGUMENT, message)
