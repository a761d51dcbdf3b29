"""The Starlette application: HTTP API for topics and caches, browser stream, console, operations."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final

from starlette.applications import Starlette
from starlette.convertors import PathConvertor, register_url_convertor
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from tidings.server.core import InvalidArgument, TopicsService, TransportStats
from tidings.server.http._auth import Authenticate
from tidings.server.http._caches import create_cache, delete_cache, get_cache, list_caches
from tidings.server.http._encoding import encode_json
from tidings.server.http._errors import NoRoute, error_response
from tidings.server.http._live import ClientGone, LiveRequests
from tidings.server.http._metrics import MetricsEndpoint, WebhookStatuses
from tidings.server.http._openapi import OPENAPI
from tidings.server.http._params import path_names
from tidings.server.http._poll import poll
from tidings.server.http._publish import publish
from tidings.server.http._stream import stream
from tidings.server.http._webhooks import webhooks_endpoint
from tidings.server.webhooks import WebhookRegistry

STATIC: Final = Path(__file__).with_name("static")


class _AnyPathConvertor(PathConvertor):
    """Starlette's ``path`` convertor is ``.*``, which stops at a newline: a name with a (percent-encoded)
    control character would get a routing 404 instead of the 400 that names the bad field."""

    regex = r"[\s\S]*"


register_url_convertor("anypath", _AnyPathConvertor())
# The console loads nothing from anywhere but this server.
_CONSOLE_HEADERS: Final = {
    "content-security-policy": (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "cache-control": "no-cache",
}
# The status a request whose client left "gets" (never sent; nginx's "client closed request").
_CLIENT_GONE: Final = 499

_CACHE_ENDPOINTS: Final[dict[str, Callable[[Request, TopicsService, Authenticate, str], Awaitable[Response]]]] = {
    "GET": get_cache,
    "PUT": create_cache,
    "DELETE": delete_cache,
}


_EVERY_METHOD: Final = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE"]


def _json(document: object, status: int = 200) -> Response:
    return Response(encode_json(document), status, media_type="application/json")


class HttpApi:
    """The endpoints, bound to one topics service."""

    def __init__(
        self,
        service: TopicsService,
        authenticate: Authenticate,
        live: LiveRequests,
        long_poll_timeout: float,
        webhooks: WebhookRegistry | None = None,
    ) -> None:
        self.service = service
        self.webhook_registry = webhooks
        self.authenticate = authenticate
        self.live = live
        self.long_poll_timeout = long_poll_timeout
        self.http_stats = service.stats_for("http")
        self.sse_stats = service.stats_for("sse")
        self._openapi = encode_json(OPENAPI)

    async def _guard(self, request: Request, stats: TransportStats, call: Awaitable[Response]) -> Response:
        try:
            return await call
        except ClientGone:
            return Response(status_code=_CLIENT_GONE)
        except Exception as error:
            return error_response(error, stats, request.scope)

    async def topics(self, request: Request) -> Response:
        """``/topics/{cache}/{topic}`` (POST publishes, GET long-polls) and ``/topics/{cache}/{topic}/events``."""
        try:
            names = path_names(request, "/topics/")
        except InvalidArgument as error:
            return error_response(error, self.http_stats, request.scope)
        method = request.method
        if len(names) == 2:
            cache, topic = names
            if method == "POST":
                call = publish(request, self.service, self.http_stats, self.authenticate, cache, topic)
                return await self._guard(request, self.http_stats, call)
            if method == "GET":
                call = poll(
                    request,
                    self.service,
                    self.http_stats,
                    self.authenticate,
                    self.live,
                    self.long_poll_timeout,
                    cache,
                    topic,
                )
                return await self._guard(request, self.http_stats, call)
            return error_response(NoRoute(f"{method} is not allowed here", 405, "GET, POST"), scope=request.scope)
        if len(names) == 3 and names[2] == "events":
            if method == "GET":
                call = stream(request, self.service, self.sse_stats, self.authenticate, self.live, *names[:2])
                return await self._guard(request, self.sse_stats, call)
            return error_response(NoRoute(f"{method} is not allowed here", 405, "GET"), scope=request.scope)
        return error_response(NoRoute("no such endpoint: /topics/{cache}/{topic}[/events]", 404), scope=request.scope)

    async def caches(self, request: Request) -> Response:
        """``GET /caches``."""
        return await self._guard(request, self.http_stats, list_caches(request, self.service, self.authenticate))

    async def cache(self, request: Request) -> Response:
        """``GET``, ``PUT`` and ``DELETE /caches/{name}``."""
        try:
            names = path_names(request, "/caches/")
        except InvalidArgument as error:
            return error_response(error, self.http_stats, request.scope)
        if len(names) != 1:
            return error_response(NoRoute("no such endpoint: /caches/{name}", 404), scope=request.scope)
        endpoint = _CACHE_ENDPOINTS.get(request.method)
        if endpoint is None:
            return error_response(
                NoRoute(f"{request.method} is not allowed here", 405, "GET, PUT, DELETE"), scope=request.scope
            )
        return await self._guard(request, self.http_stats, endpoint(request, self.service, self.authenticate, names[0]))

    async def webhooks(self, request: Request) -> Response:
        """``/webhooks/{cache}[/{name}[/secret]]`` (see ``_webhooks``)."""
        try:
            names = path_names(request, "/webhooks/")
        except InvalidArgument as error:
            return error_response(error, self.http_stats, request.scope)
        if self.webhook_registry is None:
            return error_response(NoRoute("webhooks are not served here", 404), scope=request.scope)
        call = webhooks_endpoint(request, self.webhook_registry, self.authenticate, names)
        return await self._guard(request, self.http_stats, call)

    async def health(self, request: Request) -> Response:
        """Liveness: 200 while the process serves HTTP."""
        return _json({"status": "ok"})

    async def ready(self, request: Request) -> Response:
        """Readiness: 200 while serving; 503 once shutting down, while draining open streams, or while the
        engine's Redis is unreachable."""
        if self.live.closing or self.service.draining:
            return _json({"error": {"code": "unavailable", "message": "server is shutting down"}}, 503)
        if not (await self.service.engine_status()).healthy:
            return _json({"error": {"code": "unavailable", "message": "Redis is unreachable"}}, 503)
        return _json({"status": "ready"})

    async def openapi(self, request: Request) -> Response:
        """The OpenAPI document of this API."""
        return Response(self._openapi, media_type="application/json")

    async def console(self, request: Request) -> Response:
        """The web console's page."""
        return FileResponse(STATIC / "index.html", headers=_CONSOLE_HEADERS)


async def _http_exception(request: Request, error: Exception) -> Response:
    """Routing errors (no route, wrong method) as JSON errors like the rest of the API."""
    assert isinstance(error, HTTPException)
    allow = (error.headers or {}).get("Allow")
    return error_response(NoRoute(error.detail, error.status_code, allow), scope=request.scope)


async def _unexpected(request: Request, error: Exception) -> Response:
    """A fault outside the API's own error handling: a JSON 500, logged."""
    return error_response(error, scope=request.scope)


def build_app(
    service: TopicsService,
    authenticate: Authenticate,
    live: LiveRequests,
    *,
    long_poll_timeout: float,
    webhooks: WebhookRegistry | None = None,
    webhook_statuses: WebhookStatuses | None = None,
) -> Starlette:
    """The ASGI application of the HTTP server; ``authenticate`` verifies tokens (``Authenticator.authenticate``)."""
    api = HttpApi(service, authenticate, live, long_poll_timeout, webhooks)
    metrics = MetricsEndpoint(service, live.__len__, webhook_statuses)
    routes = [
        # The hot path first: Starlette tries routes in order.
        Route("/topics/{path:anypath}", api.topics, methods=["GET", "POST"]),
        Route("/", api.console, methods=["GET"]),
        Mount("/console", StaticFiles(directory=STATIC), name="console"),
        Route("/caches", api.caches, methods=["GET"]),
        Route("/caches/{path:anypath}", api.cache, methods=["GET", "PUT", "DELETE"]),
        # Every method reaches the endpoint, which answers 405 with the methods of that path's shape.
        Route("/webhooks/{path:anypath}", api.webhooks, methods=_EVERY_METHOD),
        Route("/health", api.health, methods=["GET"]),
        Route("/ready", api.ready, methods=["GET"]),
        Route("/metrics", metrics.endpoint, methods=["GET"]),
        Route("/openapi.json", api.openapi, methods=["GET"]),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: _http_exception, Exception: _unexpected})
