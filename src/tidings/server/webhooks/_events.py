"""The JSON event a webhook POSTs for one message (docs/webhooks.md *What a delivery looks like*)."""

from __future__ import annotations

import base64
import json

from tidings.server.core import Message


def event_body(cache_name: str, topic_name: str, message: Message, publish_ms: int, event_ms: int) -> bytes:
    """The exact bytes POSTed (and signed): Momento's fields in its order, then tidings' ``sequence_page``.

    ``text`` carries a text value, ``binary`` a binary one (base64); timestamps are epoch milliseconds.
    """
    event: dict[str, object] = {
        "cache": cache_name,
        "topic": topic_name,
        "event_timestamp": event_ms,
        "publish_timestamp": publish_ms,
        "topic_sequence_number": message.sequence_number,
        "token_id": message.publisher_id,
    }
    if isinstance(message.value, str):
        event["text"] = message.value
    else:
        event["binary"] = base64.b64encode(message.value).decode("ascii")
    event["sequence_page"] = message.sequence_page
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
