"""The OpenAPI 3.1 document of the HTTP API, served at ``/openapi.json`` and kept as ``docs/openapi.json``.

Written by hand next to the endpoints it describes; a test checks that the served and committed copies are
equal and schemathesis checks that the server answers as it says. Regenerate the committed copy with
``python -c 'import json, tidings.server.http._openapi as o; print(json.dumps(o.OPENAPI, indent=2))' >
docs/openapi.json``.
"""

from __future__ import annotations

from typing import Any, Final

from tidings.server.http._openapi_schemas import NAME, SCHEMAS, UINT64, ref

_JSON = "application/json"


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": ref("Error")}}}


def _json(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": ref(schema)}}}


_BAD_REQUEST = _error("Malformed request: a bad name or parameter, or a token both in the header and the query")
_UNAUTHENTICATED = _error("The token is missing (when required), malformed, badly signed, expired or revoked")
_FORBIDDEN = _error(
    "The token does not allow this operation, or a browser sent a state-changing request from another origin "
    "that `--cors-origins` does not allow"
)
_MISDIRECTED = _error("The Host header names a host this server does not answer for (see `--allowed-hosts`)")
_CACHE_NOT_FOUND = _error("The cache does not exist")
_TOO_MANY = _error(
    "A limit was reached: subscriptions per cache, publish rate, cache or topic count (see `Retry-After`)"
)
_INTERNAL = _error("An unexpected fault; details are in the server log")
_UNAVAILABLE = _error(
    "The server is shutting down, or has as many open connections as it allows; retry (see `Retry-After`)"
)
# Any endpoint: a foreign Host header, a full server.
_CONNECTION = {"421": _MISDIRECTED, "503": _UNAVAILABLE}
_COMMON = {
    "400": _BAD_REQUEST,
    "401": _UNAUTHENTICATED,
    "403": _FORBIDDEN,
    "421": _MISDIRECTED,
    "500": _INTERNAL,
    "503": _UNAVAILABLE,
}

_CACHE = {
    "name": "cache",
    "in": "path",
    "required": True,
    "description": "Cache name: 1 to 255 bytes of UTF-8 without control characters (percent-encoded).",
    "schema": NAME,
}
_TOPIC = {**_CACHE, "name": "topic", "description": "Topic name, like a cache name."}
_CACHE_NAME = {**_CACHE, "name": "name"}
_WEBHOOK_NAME = {**_CACHE, "name": "name", "description": "Webhook name, like a cache name."}
_WEBHOOK_NOT_FOUND = _error("The cache does not exist, or has no webhook of that name")
_TOKEN_QUERY = {
    "name": "token",
    "in": "query",
    "required": False,
    "description": "A token, for clients that cannot set headers (EventSource). Not together with `Authorization`.",
    "schema": {"type": "string"},
}
_RESUME = [
    {
        "name": "sequence_number",
        "in": "query",
        "required": False,
        "description": (
            "The next sequence number expected (last received + 1); 0 or absent: the newest retained message "
            "(the server's --subscribe-latest), then new ones."
        ),
        "schema": UINT64,
    },
    {
        "name": "sequence_page",
        "in": "query",
        "required": False,
        "description": "The last sequence page seen; 0 or absent: unknown.",
        "schema": UINT64,
    },
]

OPENAPI: Final[dict[str, Any]] = {
    "openapi": "3.1.0",
    "info": {
        "title": "tidings HTTP API",
        "version": "1",
        "description": "Momento Topics over HTTP: publish, long-poll, Server-Sent Events; caches; operations. "
        "Tokens go in `Authorization` (raw or `Bearer`) or `?token=`, never both. Errors are "
        '`{"error": {"code", "message"}}`.',
    },
    "paths": {
        "/topics/{cache}/{topic}": {
            "parameters": [_CACHE, _TOPIC, _TOKEN_QUERY],
            "post": {
                "operationId": "publish",
                "summary": "Publish the body to the topic",
                "description": "`text/plain` publishes text (must be UTF-8), `application/octet-stream` binary.",
                "requestBody": {
                    "required": True,
                    "content": {
                        "text/plain": {"schema": {"type": "string", "minLength": 1}},
                        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                    },
                },
                "responses": {
                    "204": {"description": "Published"},
                    **_COMMON,
                    "404": _CACHE_NOT_FOUND,
                    "413": _error("The body is larger than the server's message size limit"),
                    "415": _error("The Content-Type is neither text/plain (UTF-8) nor application/octet-stream"),
                    "429": _TOO_MANY,
                    "504": _error("Sent to Redis, whose answer never came: the message may have been published"),
                },
            },
            "get": {
                "operationId": "poll",
                "summary": "Long-poll the topic",
                "description": "Waits until an item or a discontinuity is available, or the server's long-poll "
                "timeout (then `items` is empty); answers everything available by then, at most 128 items. "
                "Loop with `sequence_number` = last received + 1 and `sequence_page` = its page.",
                "parameters": _RESUME,
                "responses": {
                    "200": _json("Items and discontinuities, in order", "PollResponse"),
                    **_COMMON,
                    "404": _CACHE_NOT_FOUND,
                    "429": _TOO_MANY,
                },
            },
        },
        "/topics/{cache}/{topic}/events": {
            "parameters": [_CACHE, _TOPIC, _TOKEN_QUERY],
            "get": {
                "operationId": "stream",
                "summary": "The topic as Server-Sent Events",
                "description": "Events `heartbeat` (first, then while idle), `item` (data: a TopicItem) and "
                "`discontinuity` (data: a Discontinuity); items and discontinuities have the id `PAGE:SEQ`, "
                "from which a reconnecting EventSource resumes (`Last-Event-ID`).",
                "parameters": [
                    *_RESUME,
                    {
                        "name": "last_event_id",
                        "in": "query",
                        "required": False,
                        "description": "Resume after this event id (`PAGE:SEQ`); the header wins.",
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "Last-Event-ID",
                        "in": "header",
                        "required": False,
                        "description": "Sent by a reconnecting EventSource: resume after this id.",
                        "schema": {"type": "string"},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "The event stream; it ends when the server shuts down or the cache is deleted",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    **_COMMON,
                    "404": _CACHE_NOT_FOUND,
                    "429": _TOO_MANY,
                },
            },
        },
        "/caches": {
            "get": {
                "operationId": "listCaches",
                "summary": "List caches",
                "parameters": [_TOKEN_QUERY],
                "responses": {"200": _json("Every cache, by name", "CacheList"), **_COMMON},
            }
        },
        "/caches/{name}": {
            "parameters": [_CACHE_NAME, _TOKEN_QUERY],
            "get": {
                "operationId": "getCache",
                "summary": "A cache and its open subscriptions",
                "responses": {"200": _json("The cache", "Cache"), **_COMMON, "404": _CACHE_NOT_FOUND},
            },
            "put": {
                "operationId": "createCache",
                "summary": "Create a cache",
                "responses": {
                    "201": _json("Created", "Cache"),
                    **_COMMON,
                    "409": _error("The cache exists"),
                    "429": _TOO_MANY,
                },
            },
            "delete": {
                "operationId": "deleteCache",
                "summary": "Delete a cache; its subscriptions end",
                "responses": {"204": {"description": "Deleted"}, **_COMMON, "404": _CACHE_NOT_FOUND},
            },
        },
        "/webhooks/{cache}": {
            "parameters": [_CACHE, _TOKEN_QUERY],
            "get": {
                "operationId": "listWebhooks",
                "summary": "The cache's webhooks (super-user)",
                "responses": {"200": _json("Webhooks, by name", "WebhookList"), **_COMMON, "404": _CACHE_NOT_FOUND},
            },
        },
        "/webhooks/{cache}/{name}": {
            "parameters": [_CACHE, _WEBHOOK_NAME, _TOKEN_QUERY],
            "put": {
                "operationId": "putWebhook",
                "summary": "Create or replace a webhook (a replace keeps its secret); answers its secret",
                "requestBody": {"required": True, "content": {_JSON: {"schema": ref("WebhookDefinition")}}},
                "responses": {
                    "200": _json("The webhook and its signing secret", "WebhookWithSecret"),
                    **_COMMON,
                    "404": _CACHE_NOT_FOUND,
                },
            },
            "delete": {
                "operationId": "deleteWebhook",
                "summary": "Delete a webhook (deleting one that does not exist succeeds); its deliveries stop",
                "responses": {"204": {"description": "Deleted"}, **_COMMON, "404": _CACHE_NOT_FOUND},
            },
        },
        "/webhooks/{cache}/{name}/secret": {
            "parameters": [_CACHE, _WEBHOOK_NAME, _TOKEN_QUERY],
            "get": {
                "operationId": "getWebhookSecret",
                "summary": "The webhook's signing secret",
                "responses": {"200": _json("The secret", "WebhookSecret"), **_COMMON, "404": _WEBHOOK_NOT_FOUND},
            },
            "post": {
                "operationId": "rotateWebhookSecret",
                "summary": "A new signing secret; the old one stops signing at once",
                "responses": {"200": _json("The new secret", "WebhookSecret"), **_COMMON, "404": _WEBHOOK_NOT_FOUND},
            },
        },
        "/health": {
            "get": {
                "operationId": "health",
                "summary": "Liveness",
                "responses": {"200": _json("The process serves HTTP", "Status"), **_CONNECTION},
            }
        },
        "/ready": {
            "get": {
                "operationId": "ready",
                "summary": "Readiness",
                "responses": {"200": _json("Serving", "Status"), **_CONNECTION},
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus metrics",
                "responses": {
                    "200": {"description": "Exposition", "content": {"text/plain": {"schema": {"type": "string"}}}},
                    **_CONNECTION,
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "responses": {
                    "200": {"description": "OpenAPI 3.1", "content": {_JSON: {"schema": {"type": "object"}}}},
                    **_CONNECTION,
                },
            }
        },
    },
    "components": {"schemas": SCHEMAS},
}
