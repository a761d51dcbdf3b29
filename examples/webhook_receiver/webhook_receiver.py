"""A webhook receiver: tidings (or Momento) POSTs each message of a topic here; it checks the signature, skips
redeliveries, and prints the event.

Configuration (environment):

- ``WEBHOOK_SECRET``: the webhook's signing secret (what ``tidings webhook put`` / ``PutWebhook`` printed);
  required.
- ``HOST``, ``PORT``: where to listen (default ``127.0.0.1``, ``3001``).

Run it with ``python webhook_receiver.py``, or ``uvicorn --factory webhook_receiver:app_from_env``.
"""

from __future__ import annotations

import base64
import json
import os
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tidings.webhooks import SIGNATURE_HEADER, verify

# Delivery is at least once: remember this many recent (page, sequence number) pairs to drop repeats.
SEEN_LIMIT = 10_000

Event = dict[str, Any]


def describe(event: Event) -> str:
    """One line for an event: where it comes from, its position and its value."""
    value = event["text"] if "text" in event else f"<{len(base64.b64decode(event['binary']))} bytes>"
    return f"{event['cache']}/{event['topic']} #{event['topic_sequence_number']}: {value}"


def create_app(secret: str, on_event: Callable[[Event], object] = lambda event: print(describe(event))) -> Starlette:
    """The receiver: ``POST /webhook`` answers 401 to a bad signature, 400 to a body that is not an event, and 204
    (after calling ``on_event`` once per message) otherwise."""
    seen: OrderedDict[tuple[int, int], None] = OrderedDict()

    async def webhook(request: Request) -> Response:
        body = await request.body()  # the exact bytes: the signature covers them, not the parsed JSON
        if not verify(body, request.headers.get(SIGNATURE_HEADER, ""), secret):
            return JSONResponse({"error": "bad signature"}, 401)
        try:
            event = json.loads(body)
            position = (int(event.get("sequence_page", 0)), int(event["topic_sequence_number"]))
        except (ValueError, KeyError, TypeError, AttributeError):
            return JSONResponse({"error": "not a webhook event"}, 400)
        if position not in seen:
            seen[position] = None
            if len(seen) > SEEN_LIMIT:
                seen.popitem(last=False)
            on_event(event)
        return Response(status_code=204)

    return Starlette(routes=[Route("/webhook", webhook, methods=["POST"])])


def app_from_env() -> Starlette:
    """The receiver configured from the environment (``WEBHOOK_SECRET``)."""
    secret = os.environ.get("WEBHOOK_SECRET")
    if not secret:
        raise SystemExit("set WEBHOOK_SECRET to the webhook's signing secret")
    return create_app(secret)


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app_from_env(), host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ.get("PORT", "3001")))
