"""The schemas of the HTTP API's OpenAPI document (its ``components``): request and response bodies, items,
discontinuities and errors. ``_openapi`` describes the paths that use them."""

from __future__ import annotations

from typing import Any, Final

UINT64: Final = {"type": "integer", "minimum": 0, "maximum": 2**64 - 1}
# maxLength counts characters; the limit is 255 bytes of UTF-8, which JSON Schema cannot say.
NAME: Final = {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]+$"}


def ref(name: str) -> dict[str, str]:
    """A reference to the schema ``name`` of `SCHEMAS`."""
    return {"$ref": f"#/components/schemas/{name}"}


SCHEMAS: Final[dict[str, Any]] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {
                        "type": "string",
                        "description": "invalid_argument, unauthenticated, permission_denied, not_found, "
                        "already_exists, method_not_allowed, unsupported_media_type, request_size_limit_exceeded, "
                        "topic_subscriptions_limit_exceeded, operations_rate_limit_exceeded, "
                        "cache_count_limit_exceeded, topic_count_limit_exceeded, unavailable, deadline_exceeded "
                        "or internal",
                    },
                    "message": {"type": "string"},
                },
            }
        },
    },
    "TopicValue": {
        "oneOf": [
            {"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}},
            {
                "type": "object",
                "required": ["binary"],
                "properties": {"binary": {"type": "string", "contentEncoding": "base64"}},
            },
        ]
    },
    "TopicItem": {
        "type": "object",
        "required": ["topic_sequence_number", "sequence_page", "value", "publisher_id"],
        "properties": {
            "topic_sequence_number": UINT64,
            "sequence_page": UINT64,
            "value": ref("TopicValue"),
            "publisher_id": {"type": "string", "description": "Token id of the publisher; empty if none."},
        },
    },
    "Discontinuity": {
        "type": "object",
        "required": ["last_topic_sequence", "new_topic_sequence", "new_sequence_page"],
        "properties": {
            "last_topic_sequence": UINT64,
            "new_topic_sequence": {**UINT64, "description": "The next item has this sequence number + 1."},
            "new_sequence_page": UINT64,
        },
    },
    "PollResponse": {
        "type": "object",
        "required": ["items"],
        "properties": {
            "items": {
                "type": "array",
                "items": {
                    "oneOf": [
                        {"type": "object", "required": ["item"], "properties": {"item": ref("TopicItem")}},
                        {
                            "type": "object",
                            "required": ["discontinuity"],
                            "properties": {"discontinuity": ref("Discontinuity")},
                        },
                    ]
                },
            }
        },
    },
    "CacheList": {
        "type": "object",
        "required": ["caches"],
        "properties": {
            "caches": {
                "type": "array",
                "items": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}},
            }
        },
    },
    "Cache": {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string"},
            "subscriptions": {"type": "integer", "minimum": 0, "description": "Open subscriptions on this process."},
        },
    },
    "Status": {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}},
    "WebhookDefinition": {
        "type": "object",
        "required": ["topic", "url"],
        "properties": {
            "topic": {**NAME, "description": "The topic whose messages are POSTed."},
            "url": {"type": "string", "description": "An http:// or https:// URL with a host."},
        },
    },
    "Webhook": {
        "type": "object",
        "required": ["name", "topic", "url"],
        "properties": {"name": {"type": "string"}, "topic": {"type": "string"}, "url": {"type": "string"}},
    },
    "WebhookList": {
        "type": "object",
        "required": ["webhooks"],
        "properties": {"webhooks": {"type": "array", "items": ref("Webhook")}},
    },
    "WebhookWithSecret": {
        "allOf": [
            ref("Webhook"),
            {"type": "object", "required": ["secret"], "properties": {"secret": {"type": "string"}}},
        ]
    },
    "WebhookSecret": {
        "type": "object",
        "required": ["secret"],
        "properties": {
            "secret": {
                "type": "string",
                "description": "Signs deliveries: header momento-signature = hex HMAC-SHA3-256 of the body.",
            }
        },
    },
}
