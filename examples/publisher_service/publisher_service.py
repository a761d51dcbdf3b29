"""An item publishing microservice: other services POST ``{"topicName": ..., "topicValue": ...}`` to it and it
publishes the value to a topic of one configured cache through the tidings SDK.

Configuration (environment):

- ``PUBLISHER_TOKEN``: the bearer token callers must send (``Authorization: Bearer ...``); required.
- ``PUBLISHER_CACHE``: the cache to publish to (default ``default-cache``).
- ``TIDINGS_ENDPOINT`` / ``TIDINGS_API_KEY``: where tidings listens (default ``localhost:8080``) and the API key
  or token to publish with (none: anonymous), as ``tidings.TopicClientAsync.from_env()`` reads them.

Run it with ``python publisher_service.py`` (port ``PORT``, default 3000) or
``uvicorn --factory publisher_service:app_from_env``.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tidings import ErrorCode, TopicClientAsync, TopicPublish

# How SDK errors reach callers: their fault (4xx) or tidings' (502/503).
_TOO_LARGE = "request_size_limit_exceeded"
_STATUS_OF_ERROR = {
    ErrorCode.INVALID_ARGUMENT: 400,
    ErrorCode.CACHE_NOT_FOUND: 502,  # the service is misconfigured, not the caller
    ErrorCode.LIMIT_EXCEEDED: 429,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.TIMEOUT: 503,
}


def _error(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message}, status, headers=headers or None)


def create_app(
    topics: TopicClientAsync,
    cache_name: str,
    bearer_token: str,
    lifespan: Callable[[Starlette], AbstractAsyncContextManager[None]] | None = None,
) -> Starlette:
    """The service: ``POST /publish`` (and ``GET /health``), publishing with ``topics`` to ``cache_name``."""
    if not bearer_token:
        raise ValueError("a bearer token is required (PUBLISHER_TOKEN)")
    expected = f"Bearer {bearer_token}".encode()

    async def publish(request: Request) -> Response:
        authorization = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(authorization, expected):
            return _error(401, "missing or wrong bearer token", **{"www-authenticate": "Bearer"})
        try:
            body: Any = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            return _error(400, "the body must be JSON")
        if not isinstance(body, dict):
            return _error(400, 'the body must be {"topicName": ..., "topicValue": ...}')
        topic_name, topic_value = body.get("topicName"), body.get("topicValue")
        if not isinstance(topic_name, str) or not isinstance(topic_value, str):
            return _error(400, "topicName and topicValue must be strings")
        response = await topics.publish(cache_name, topic_name, topic_value)
        if isinstance(response, TopicPublish.Error):
            status = 413 if response.limit == _TOO_LARGE else _STATUS_OF_ERROR.get(response.error_code, 502)
            return _error(status, response.message)
        return JSONResponse({"published": {"cacheName": cache_name, "topicName": topic_name}})

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    routes = [Route("/publish", publish, methods=["POST"]), Route("/health", health)]
    return Starlette(routes=routes, lifespan=lifespan)


def app_from_env() -> Starlette:
    """The service configured from the environment; its SDK client is closed when the server shuts down."""
    topics = TopicClientAsync.from_env()  # connects on first use

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with topics:
            yield

    cache_name = os.environ.get("PUBLISHER_CACHE", "default-cache")
    return create_app(topics, cache_name, os.environ.get("PUBLISHER_TOKEN", ""), lifespan)


if __name__ == "__main__":
    import uvicorn

    host, port = os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "3000"))
    uvicorn.run(app_from_env(), host=host, port=port)
