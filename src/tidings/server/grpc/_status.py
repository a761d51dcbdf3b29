"""The one place domain errors become gRPC statuses (the protocol's errors: README *Errors clients see*)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import grpc
from google.protobuf.message import DecodeError, Message

from tidings.server.core import (
    CacheAlreadyExists,
    CacheNotFound,
    InvalidArgument,
    LimitExceeded,
    OutcomeUnknown,
    PermissionDenied,
    TopicsError,
    TransportStats,
    Unauthenticated,
    Unavailable,
    WebhookNotFound,
)
from tidings.server.grpc._context import ABORTS, CallContext

logger = logging.getLogger("tidings.server.grpc")

_STATUS_OF: dict[type[TopicsError], grpc.StatusCode] = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    CacheNotFound: grpc.StatusCode.NOT_FOUND,
    WebhookNotFound: grpc.StatusCode.NOT_FOUND,
    CacheAlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    LimitExceeded: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
    # gRPC's own definition: "for operations that change the state of the system, this error may be returned even
    # if the operation has completed successfully", which is what a Redis command without its reply means.
    OutcomeUnknown: grpc.StatusCode.DEADLINE_EXCEEDED,
}

INTERNAL_MESSAGE = "internal server error; the server log has the details"

Request = TypeVar("Request", bound=Message)


def parse_request(kind: type[Request], data: bytes) -> Request:
    """Decode a request message; a malformed one is INVALID_ARGUMENT (not grpcio's generic failure)."""
    try:
        return kind.FromString(data)
    except DecodeError:
        raise InvalidArgument(f"malformed {kind.__name__.lstrip('_')}") from None


def status_of(error: TopicsError) -> tuple[grpc.StatusCode, tuple[tuple[str, str], ...]]:
    """The status code and trailing metadata for ``error``."""
    code = _STATUS_OF.get(type(error), grpc.StatusCode.INTERNAL)
    metadata = (("err", error.limit.value),) if isinstance(error, LimitExceeded) else ()
    return code, metadata


Handler = TypeVar("Handler", bound=Callable[..., Awaitable[Any]])


class Servicer(Protocol):
    """What `guarded` needs of a servicer: the transport's counters."""

    stats: TransportStats


def guarded(handler: Handler) -> Handler:
    """Map domain errors to statuses and unexpected faults to INTERNAL (logged, not leaked), counting them."""

    async def call(self: Servicer, request: bytes, context: CallContext) -> Any:
        try:
            return await handler(self, request, context)
        except TopicsError as error:
            code, metadata = status_of(error)
            message = error.message
            if logger.isEnabledFor(logging.DEBUG):  # the client's address and the reason, never its token
                logger.debug("%s from %s answered %s: %s", handler.__qualname__, context.peer(), code.name, message)
        except ABORTS:
            raise
        except Exception:
            logger.exception("unexpected fault in %s", handler.__qualname__)
            code, metadata, message = grpc.StatusCode.INTERNAL, (), INTERNAL_MESSAGE
        # Abort outside the except clause and without the request: grpcio keeps the abort's exception in a
        # reference cycle with its call state, so what its traceback reaches (the request bytes, the domain
        # error and its frames) would otherwise stay in memory until the cyclic garbage collector runs.
        del request
        self.stats.errors[code.name] += 1
        await context.abort(code, message, trailing_metadata=metadata)

    call.__qualname__ = handler.__qualname__
    call.__doc__ = handler.__doc__
    return call  # type: ignore[return-value]
