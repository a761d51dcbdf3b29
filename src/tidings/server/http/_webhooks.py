"""``/webhooks/{cache}[/{name}[/secret]]``: the webhook service over HTTP (super-user only, as over gRPC).

``GET /webhooks/{cache}`` lists; ``PUT /webhooks/{cache}/{name}`` with ``{"topic", "url"}`` creates or replaces
and answers the secret; ``DELETE`` deletes; ``GET .../secret`` answers the secret and ``POST .../secret``
rotates it.
"""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import Response

from tidings.server.core import InvalidArgument
from tidings.server.http._auth import Authenticate, authorize
from tidings.server.http._encoding import encode_json
from tidings.server.http._errors import NoRoute
from tidings.server.webhooks import Webhook, WebhookRegistry

# A webhook definition is a topic name and a URL: anything longer is not one.
MAX_BODY_BYTES = 16 * 1024


def _json(document: object, status: int = 200) -> Response:
    return Response(encode_json(document), status, media_type="application/json")


def _described(webhook: Webhook) -> dict[str, str]:
    return {"name": webhook.name, "topic": webhook.topic_name, "url": webhook.url}


async def _definition(request: Request) -> tuple[str, str]:
    """``(topic, url)`` from a JSON body ``{"topic": ..., "url": ...}``."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise InvalidArgument(f"the body must be at most {MAX_BODY_BYTES} bytes")
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument('the body must be JSON: {"topic": ..., "url": ...}') from None
    if not isinstance(document, dict):
        raise InvalidArgument('the body must be a JSON object: {"topic": ..., "url": ...}')
    topic, url = document.get("topic"), document.get("url")
    if not isinstance(topic, str):
        raise InvalidArgument("topic_name must be a string (the body's topic)")
    if not isinstance(url, str):
        raise InvalidArgument("post_url must be a string (the body's url)")
    return topic, url


async def webhooks_endpoint(
    request: Request, registry: WebhookRegistry, authenticate: Authenticate, names: list[str]
) -> Response:
    """Dispatch ``names`` (the path after ``/webhooks/``) and the method to the registry."""
    method = request.method
    if len(names) == 1:
        if method != "GET":
            raise NoRoute(f"{method} is not allowed here", 405, "GET")
        webhooks = await registry.list(names[0], authorize(request, authenticate))
        return _json({"webhooks": [_described(webhook) for webhook in webhooks]})
    if len(names) == 2:
        cache, name = names
        if method == "PUT":
            principal = authorize(request, authenticate)
            topic, url = await _definition(request)
            webhook = await registry.put(cache, name, topic, url, principal)
            return _json({**_described(webhook), "secret": webhook.secret})
        if method == "DELETE":
            await registry.delete(cache, name, authorize(request, authenticate))
            return Response(status_code=204)
        raise NoRoute(f"{method} is not allowed here", 405, "PUT, DELETE")
    if len(names) == 3 and names[2] == "secret":
        cache, name = names[:2]
        if method == "GET":
            webhook = await registry.get(cache, name, authorize(request, authenticate))
        elif method == "POST":
            webhook = await registry.rotate_secret(cache, name, authorize(request, authenticate))
        else:
            raise NoRoute(f"{method} is not allowed here", 405, "GET, POST")
        return _json({"secret": webhook.secret})
    raise NoRoute("no such endpoint: /webhooks/{cache}[/{name}[/secret]]", 404)
