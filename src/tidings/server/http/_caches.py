"""``/caches``: list, inspect, create and delete caches (for the console and scripts).

Cache management needs a super-user (PROTOCOL.md *Tokens and permissions*): until tokens exist every caller
is anonymous, which a loopback server treats as super-user.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from tidings.server.core import CacheNotFound, TopicsService, validate_name
from tidings.server.http._auth import authorize
from tidings.server.http._encoding import encode_json


def _json(document: object, status: int = 200) -> Response:
    return Response(encode_json(document), status, media_type="application/json")


async def list_caches(request: Request, service: TopicsService) -> Response:
    """``GET /caches``: ``{"caches": [{"name": ...}, ...]}``, sorted by name."""
    authorize(request)
    return _json({"caches": [{"name": name} for name in service.list_caches()]})


async def get_cache(request: Request, service: TopicsService, name: str) -> Response:
    """``GET /caches/{name}``: the cache and how many subscriptions it has open; 404 if it does not exist."""
    authorize(request)
    validate_name("cache_name", name)
    if not service.has_cache(name):
        raise CacheNotFound(name)
    return _json({"name": name, "subscriptions": service.subscription_count(name)})


async def create_cache(request: Request, service: TopicsService, name: str) -> Response:
    """``PUT /caches/{name}``: create the cache; 201, or 409 if it exists."""
    authorize(request)
    await service.create_cache(name)
    return _json({"name": name}, 201)


async def delete_cache(request: Request, service: TopicsService, name: str) -> Response:
    """``DELETE /caches/{name}``: delete the cache (its subscriptions end); 204, or 404."""
    authorize(request)
    await service.delete_cache(name)
    return Response(status_code=204)
