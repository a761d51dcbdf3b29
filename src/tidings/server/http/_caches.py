"""``/caches``: list, inspect, create and delete caches (for the console and scripts).

Cache management needs a super-user (README *Authentication and tokens*); the core checks it.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from tidings.server.core import TopicsService
from tidings.server.http._auth import Authenticate, authorize
from tidings.server.http._encoding import encode_json


def _json(document: object, status: int = 200) -> Response:
    return Response(encode_json(document), status, media_type="application/json")


async def list_caches(request: Request, service: TopicsService, authenticate: Authenticate) -> Response:
    """``GET /caches``: ``{"caches": [{"name": ...}, ...]}``, sorted by name."""
    principal = authorize(request, authenticate)
    return _json({"caches": [{"name": name} for name in await service.list_caches(principal)]})


async def get_cache(request: Request, service: TopicsService, authenticate: Authenticate, name: str) -> Response:
    """``GET /caches/{name}``: the cache and how many subscriptions it has open on this server; 404 if it does not
    exist."""
    subscriptions = await service.inspect_cache(name, authorize(request, authenticate))
    return _json({"name": name, "subscriptions": subscriptions})


async def create_cache(request: Request, service: TopicsService, authenticate: Authenticate, name: str) -> Response:
    """``PUT /caches/{name}``: create the cache; 201, or 409 if it exists."""
    await service.create_cache(name, authorize(request, authenticate))
    return _json({"name": name}, 201)


async def delete_cache(request: Request, service: TopicsService, authenticate: Authenticate, name: str) -> Response:
    """``DELETE /caches/{name}``: delete the cache (its subscriptions end); 204, or 404."""
    await service.delete_cache(name, authorize(request, authenticate))
    return Response(status_code=204)
