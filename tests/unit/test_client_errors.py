"""The SDK's one mapping from gRPC statuses (and timeouts, cancellations) to `ErrorCode`."""

from __future__ import annotations

import asyncio

import grpc
import grpc.aio
import pytest

from tidings import ErrorCode, ErrorResponse, TopicPublish
from tidings.client._errors import error_from


def rpc_error(code: grpc.StatusCode, details: str = "details", err: str | None = None) -> grpc.aio.AioRpcError:
    trailing = grpc.aio.Metadata(("err", err)) if err else grpc.aio.Metadata()
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), trailing, details, None)


@pytest.mark.parametrize(
    ("status", "error_code"),
    [
        (grpc.StatusCode.NOT_FOUND, ErrorCode.CACHE_NOT_FOUND),
        (grpc.StatusCode.ALREADY_EXISTS, ErrorCode.ALREADY_EXISTS),
        (grpc.StatusCode.INVALID_ARGUMENT, ErrorCode.INVALID_ARGUMENT),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, ErrorCode.LIMIT_EXCEEDED),
        (grpc.StatusCode.UNAUTHENTICATED, ErrorCode.AUTHENTICATION),
        (grpc.StatusCode.PERMISSION_DENIED, ErrorCode.PERMISSION_DENIED),
        (grpc.StatusCode.UNAVAILABLE, ErrorCode.UNAVAILABLE),
        (grpc.StatusCode.DEADLINE_EXCEEDED, ErrorCode.TIMEOUT),
        (grpc.StatusCode.CANCELLED, ErrorCode.CANCELLED),
        (grpc.StatusCode.INTERNAL, ErrorCode.INTERNAL),
        (grpc.StatusCode.UNIMPLEMENTED, ErrorCode.UNKNOWN),
        (grpc.StatusCode.UNKNOWN, ErrorCode.UNKNOWN),
    ],
    ids=lambda value: value.name,
)
def test_client_errors_map_each_status(status: grpc.StatusCode, error_code: ErrorCode) -> None:
    exception = rpc_error(status)

    error = error_from(TopicPublish.Error, exception)

    assert isinstance(error, TopicPublish.Error)
    assert isinstance(error, ErrorResponse)
    assert (error.error_code, error.message, error.limit) == (error_code, "details", None)
    assert error.inner_exception is exception


def test_client_errors_keep_the_limit_of_a_resource_exhausted_status() -> None:
    exception = rpc_error(grpc.StatusCode.RESOURCE_EXHAUSTED, "too big", err="request_size_limit_exceeded")

    error = error_from(TopicPublish.Error, exception)

    assert error.error_code is ErrorCode.LIMIT_EXCEEDED
    assert error.limit == "request_size_limit_exceeded"
    assert "request_size_limit_exceeded" in error.message


@pytest.mark.parametrize(
    ("exception", "error_code"),
    [
        (TimeoutError(), ErrorCode.TIMEOUT),
        (asyncio.CancelledError(), ErrorCode.CANCELLED),
        (ConnectionError("odd stream"), ErrorCode.UNKNOWN),
    ],
    ids=["timeout", "cancelled", "other"],
)
def test_client_errors_map_exceptions_that_are_not_statuses(exception: BaseException, error_code: ErrorCode) -> None:
    error = error_from(TopicPublish.Error, exception)

    assert error.error_code is error_code
    assert error.message


def test_client_errors_are_values_that_match_on_their_fields() -> None:
    error = error_from(TopicPublish.Error, rpc_error(grpc.StatusCode.NOT_FOUND, "cache not found: 'x'"))

    matched: str | None
    match error:
        case TopicPublish.Error(ErrorCode.CACHE_NOT_FOUND, message):
            matched = message
        case _:
            matched = None

    assert matched == "cache not found: 'x'"
    assert error == TopicPublish.Error(ErrorCode.CACHE_NOT_FOUND, "cache not found: 'x'")
