"""The HTTP transport's one mapping from domain errors to statuses, and where requests carry tokens."""

from __future__ import annotations

import json

import pytest
from starlette.requests import Request

from tidings.server.core import (
    CacheAlreadyExists,
    CacheNotFound,
    InvalidArgument,
    Limit,
    LimitExceeded,
    OutcomeUnknown,
    PermissionDenied,
    TopicsError,
    TransportStats,
    Unauthenticated,
    Unavailable,
)
from tidings.server.http._auth import credentials_of
from tidings.server.http._errors import INTERNAL_MESSAGE, NoRoute, UnsupportedMediaType, error_response, status_of
from tidings.server.http._publish import is_text


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (InvalidArgument("bad"), 400, "invalid_argument"),
        (Unauthenticated("who"), 401, "unauthenticated"),
        (PermissionDenied("no"), 403, "permission_denied"),
        (CacheNotFound("c"), 404, "not_found"),
        (NoRoute("none", 404), 404, "not_found"),
        (NoRoute("verb", 405, "GET"), 405, "method_not_allowed"),
        (CacheAlreadyExists("c"), 409, "already_exists"),
        (LimitExceeded(Limit.REQUEST_SIZE, "big"), 413, "request_size_limit_exceeded"),
        (UnsupportedMediaType("type"), 415, "unsupported_media_type"),
        (LimitExceeded(Limit.OPERATIONS_RATE, "fast"), 429, "operations_rate_limit_exceeded"),
        (LimitExceeded(Limit.TOPIC_SUBSCRIPTIONS, "many"), 429, "topic_subscriptions_limit_exceeded"),
        (LimitExceeded(Limit.CACHE_COUNT, "caches"), 429, "cache_count_limit_exceeded"),
        (Unavailable("bye"), 503, "unavailable"),
        (OutcomeUnknown("maybe"), 504, "deadline_exceeded"),
        (TopicsError("unknown kind"), 500, "internal"),
        (RuntimeError("secret detail"), 500, "internal"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_status_of_maps_every_error(error: Exception, status: int, code: str) -> None:
    assert status_of(error)[:2] == (status, code)


def test_every_limit_has_a_status() -> None:
    for limit in Limit:
        assert status_of(LimitExceeded(limit, "x"))[0] in (413, 429)


def test_error_response_is_json_and_counted() -> None:
    stats = TransportStats()

    response = error_response(CacheNotFound("c"), stats)

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert json.loads(bytes(response.body)) == {"error": {"code": "not_found", "message": "cache not found: 'c'"}}
    assert stats.errors == {"404": 1}


def test_unexpected_fault_is_500_without_leaking_its_message(caplog: pytest.LogCaptureFixture) -> None:
    response = error_response(RuntimeError("secret detail"))

    body = json.loads(bytes(response.body))
    assert response.status_code == 500
    assert body["error"]["message"] == INTERNAL_MESSAGE
    assert "secret" not in bytes(response.body).decode()
    assert "secret detail" in caplog.text  # logged for the operator


@pytest.mark.parametrize(
    ("error", "header", "value"),
    [
        (Unavailable("bye"), "retry-after", "1"),
        (LimitExceeded(Limit.OPERATIONS_RATE, "fast"), "retry-after", "1"),
        (LimitExceeded(Limit.REQUEST_SIZE, "big"), "connection", "close"),
        (NoRoute("verb", 405, "GET, POST"), "allow", "GET, POST"),
    ],
    ids=["unavailable", "rate", "size", "method"],
)
def test_error_response_headers(error: Exception, header: str, value: str) -> None:
    assert error_response(error).headers[header] == value


def _request(query: str = "", **headers: str) -> Request:
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "query_string": query.encode(),
        "headers": [(name.encode(), value.encode()) for name, value in headers.items()],
    }
    return Request(scope)


@pytest.mark.parametrize(
    ("request_", "token"),
    [
        (_request(), None),
        (_request(authorization="raw-token"), "raw-token"),
        (_request(authorization="Bearer abc"), "abc"),
        (_request(authorization="bearer  abc "), "abc"),
        (_request("token=q%2Bt"), "q+t"),
        (_request(authorization=""), None),
        (_request("token="), None),
    ],
    ids=["none", "raw", "bearer", "bearer-lowercase", "query", "empty-header", "empty-query"],
)
def test_credentials_of_reads_header_or_query(request_: Request, token: str | None) -> None:
    assert credentials_of(request_) == token


def test_credentials_in_header_and_query_is_invalid() -> None:
    with pytest.raises(InvalidArgument, match="not both"):
        credentials_of(_request("token=a", authorization="b"))


@pytest.mark.parametrize(
    ("content_type", "text"),
    [
        ("text/plain", True),
        ("text/plain; charset=utf-8", True),
        ('TEXT/PLAIN;Charset="UTF8"', True),
        ("application/octet-stream", False),
        ("Application/Octet-Stream; x=1", False),
    ],
)
def test_is_text_accepts_utf8_text_and_binary(content_type: str, text: bool) -> None:
    assert is_text(content_type) is text


@pytest.mark.parametrize("content_type", [None, "", "application/json", "text/plain; charset=latin-1", "text/html"])
def test_is_text_refuses_other_media_types(content_type: str | None) -> None:
    with pytest.raises(UnsupportedMediaType):
        is_text(content_type)


def test_http_package_exports_exactly_its_public_names() -> None:
    import tidings.server.http as http

    # pytest's assertion rewriting adds "@py_*" names to the modules of a distribution that ships a plugin.
    public = {name for name in dir(http) if not name.startswith(("_", "@"))}

    assert http.__all__ == sorted(http.__all__) == ["ConnectionLimits", "HttpServer", "build_app"]
    assert set(http.__all__) == public
