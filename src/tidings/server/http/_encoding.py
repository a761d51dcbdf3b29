"""JSON and Server-Sent Events encodings of what a subscription delivers.

A message is encoded once per encoding and cached through ``Message.encoded`` (README *Memory: what
retention can hold*), which counts it against retention: the long-poll endpoint and the SSE stream each pay
for it once however many clients receive it.

Item objects are docs/http.md's ``{"topic_sequence_number", "sequence_page", "value": {"text" | "binary"},
"publisher_id"}``, binary values in base64. An SSE frame carries the same object as its ``data`` and
``PAGE:SEQ`` as its ``id`` (for a discontinuity, the position after which items resume), so that
``Last-Event-ID`` is a resume point. `SSE_ENCODER` and `POLL_ENCODER` are what the core's delivery writes with.
"""

from __future__ import annotations

import json
from base64 import b64encode
from collections.abc import Iterable, Sequence
from typing import Final

from tidings.server.core import HEARTBEAT, Discontinuity, Encoder, Event, Message, Position

_JSON: Final = "json"
_SSE: Final = "sse"

SSE_HEARTBEAT: Final = b"event: heartbeat\ndata: {}\n\n"
# First bytes of every stream: reconnect after 1 s (browsers default to about 3 s), then a heartbeat, as the
# first message of every gRPC stream is one.
SSE_PREAMBLE: Final = b"retry: 1000\n\n" + SSE_HEARTBEAT


def _dumps(document: object) -> bytes:
    text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: escape it rather than emit invalid UTF-8
        return json.dumps(document, separators=(",", ":")).encode("ascii")


def encode_item(message: Message) -> bytes:
    """The JSON item object of ``message`` (without the ``{"item": ...}`` wrapper), encoded once."""
    return message.encoded(_JSON, _encode_item)


def _encode_item(message: Message) -> bytes:
    value = message.value
    return _dumps(
        {
            "topic_sequence_number": message.sequence_number,
            "sequence_page": message.sequence_page,
            "value": {"text": value} if isinstance(value, str) else {"binary": b64encode(value).decode("ascii")},
            "publisher_id": message.publisher_id,
        }
    )


def encode_discontinuity(discontinuity: Discontinuity) -> bytes:
    """The JSON discontinuity object (without the ``{"discontinuity": ...}`` wrapper)."""
    return (
        b'{"last_topic_sequence":%d,"new_topic_sequence":%d,"new_sequence_page":%d}'
        % (discontinuity.last_topic_sequence, discontinuity.new_topic_sequence, discontinuity.new_sequence_page)
    )  # fmt: skip


def poll_item(message: Message) -> bytes:
    """A long-poll entry ``{"item": ...}``."""
    return b'{"item":' + encode_item(message) + b"}"


def poll_discontinuity(discontinuity: Discontinuity) -> bytes:
    """A long-poll entry ``{"discontinuity": ...}``."""
    return b'{"discontinuity":' + encode_discontinuity(discontinuity) + b"}"


# A long poll's entries; it never delivers heartbeats (`TopicCursor.deliver_first`).
POLL_ENCODER: Final = Encoder(poll_item, poll_discontinuity, b"")


def poll_body(entries: Sequence[bytes]) -> bytes:
    """The long-poll response body ``{"items": [...]}`` of encoded entries."""
    return b'{"items":[' + b",".join(entries) + b"]}"


def encode_poll(events: Iterable[Event]) -> bytes:
    """The long-poll response body ``{"items": [...]}`` for ``events`` (heartbeats are left out)."""
    return poll_body(POLL_ENCODER.encode([event for event in events if event is not HEARTBEAT]))


def sse_item(message: Message) -> bytes:
    """The SSE frame of ``message`` (event ``item``, id ``PAGE:SEQ``), encoded once."""
    return message.encoded(_SSE, _encode_sse_item)


def _encode_sse_item(message: Message) -> bytes:
    return b"event: item\nid: %d:%d\ndata: %s\n\n" % (
        message.sequence_page,
        message.sequence_number,
        encode_item(message),
    )


def sse_discontinuity(discontinuity: Discontinuity) -> bytes:
    """The SSE frame of a discontinuity; its id is the position after which items resume."""
    return b"event: discontinuity\nid: %d:%d\ndata: %s\n\n" % (
        discontinuity.new_sequence_page,
        discontinuity.new_topic_sequence,
        encode_discontinuity(discontinuity),
    )


# Every stream starts with `SSE_PREAMBLE`; the core's delivery writes each batch's frames as one body.
SSE_ENCODER: Final = Encoder(sse_item, sse_discontinuity, SSE_HEARTBEAT, preamble=SSE_PREAMBLE)


def encode_sse(events: Sequence[Event]) -> bytes:
    """The SSE frames of a batch of events, as one chunk."""
    return b"".join(SSE_ENCODER.encode(events))


def parse_event_id(event_id: str) -> Position:
    """The resume point after an SSE event id ``PAGE:SEQ``: the same page, the next sequence number.

    Raises ``ValueError`` when ``event_id`` is not two unsigned 64-bit integers joined by a colon.
    """
    page_text, separator, sequence_text = event_id.strip().partition(":")
    if not (separator and _is_decimal(page_text) and _is_decimal(sequence_text)):
        raise ValueError(f"not PAGE:SEQ: {event_id!r}")
    page, sequence = int(page_text), int(sequence_text)
    if page >= 2**64 or sequence >= 2**64 - 1:
        raise ValueError(f"out of range: {event_id!r}")
    return Position(page, sequence + 1)


def _is_decimal(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 20


def encode_error(code: str, message: str) -> bytes:
    """The error body ``{"error": {"code", "message"}}``."""
    return _dumps({"error": {"code": code, "message": message}})


def encode_json(document: object) -> bytes:
    """Compact UTF-8 JSON."""
    return _dumps(document)
