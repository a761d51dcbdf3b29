"""The HTTP transport's JSON and Server-Sent Events encodings."""

from __future__ import annotations

import json

import pytest

from tidings.server.core import HEARTBEAT, Discontinuity, Event, Message, Position
from tidings.server.http._encoding import (
    SSE_HEARTBEAT,
    SSE_PREAMBLE,
    encode_error,
    encode_item,
    encode_poll,
    encode_sse,
    parse_event_id,
    sse_item,
)

PAGE = 1_700_000_000_000_000


def _message(value: str | bytes, sequence_number: int = 1, publisher_id: str = "") -> Message:
    size = len(value) if isinstance(value, bytes) else len(value.encode("utf-8", "surrogatepass"))
    return Message(PAGE, sequence_number, value, publisher_id, size)


def test_encode_item_text_has_the_protocol_fields() -> None:
    item = json.loads(encode_item(_message("héllo\n", 7, "token-1")))

    assert item == {
        "topic_sequence_number": 7,
        "sequence_page": PAGE,
        "value": {"text": "héllo\n"},
        "publisher_id": "token-1",
    }


def test_encode_item_binary_is_base64() -> None:
    item = json.loads(encode_item(_message(b"\x00\xff")))

    assert item["value"] == {"binary": "AP8="}


def test_encode_item_is_computed_once_per_message() -> None:
    message = _message("v")

    first = encode_item(message)
    second = encode_item(message)

    assert first is second
    assert message.encodings is not None
    assert set(message.encodings) == {"json"}


def test_encode_item_keeps_other_transports_encodings() -> None:
    message = _message("v")
    message.encodings = {"grpc": b"wire"}

    encode_item(message)
    sse_item(message)

    assert set(message.encodings) == {"grpc", "json", "sse"}


def test_encode_item_escapes_a_lone_surrogate_rather_than_failing() -> None:
    item = json.loads(encode_item(_message("a\ud800")))

    assert item["value"]["text"] == "a\ud800"


def test_encode_poll_wraps_items_and_discontinuities_and_drops_heartbeats() -> None:
    events: list[Event] = [Discontinuity(0, 4, PAGE), _message("a", 5), HEARTBEAT, _message(b"b", 6)]

    body = json.loads(encode_poll(events))

    assert body == {
        "items": [
            {"discontinuity": {"last_topic_sequence": 0, "new_topic_sequence": 4, "new_sequence_page": PAGE}},
            {"item": json.loads(encode_item(events[1]))},  # type: ignore[arg-type]
            {"item": json.loads(encode_item(events[3]))},  # type: ignore[arg-type]
        ]
    }


def test_encode_poll_of_nothing_is_an_empty_list() -> None:
    assert encode_poll([]) == b'{"items":[]}'


def test_sse_item_frame_has_event_id_and_one_data_line() -> None:
    frame = sse_item(_message("line one\nline two", 3))

    lines = frame.decode().split("\n")
    assert lines[0] == "event: item"
    assert lines[1] == f"id: {PAGE}:3"
    assert lines[2].startswith("data: ")
    assert json.loads(lines[2].removeprefix("data: "))["value"] == {"text": "line one\nline two"}
    assert lines[3:] == ["", ""]


def test_sse_item_frame_is_computed_once() -> None:
    message = _message("v")

    assert sse_item(message) is sse_item(message)


def test_encode_sse_batch_marks_each_kind() -> None:
    frames = encode_sse([Discontinuity(2, 9, PAGE), _message("x", 10), HEARTBEAT]).decode()

    assert frames.count("\n\n") == 3
    assert f"event: discontinuity\nid: {PAGE}:9\n" in frames
    assert f"event: item\nid: {PAGE}:10\n" in frames
    assert frames.endswith(SSE_HEARTBEAT.decode())


def test_sse_preamble_sets_the_retry_and_starts_with_a_heartbeat() -> None:
    assert SSE_PREAMBLE.startswith(b"retry: 1000\n\n")
    assert SSE_PREAMBLE.endswith(SSE_HEARTBEAT)
    assert b"data: {}" in SSE_HEARTBEAT  # EventSource ignores events without data


@pytest.mark.parametrize(
    ("event_id", "resume"),
    [(f"{PAGE}:3", Position(PAGE, 4)), (f"{PAGE}:0", Position(PAGE, 1)), (" 5:6 ", Position(5, 7))],
    ids=["item", "discontinuity-at-start", "whitespace"],
)
def test_parse_event_id_resumes_after_it(event_id: str, resume: Position) -> None:
    assert parse_event_id(event_id) == resume


@pytest.mark.parametrize(
    "event_id",
    ["", "5", "5:", ":5", "a:1", "1:b", "-1:2", "1:2:3", "\u0661:2", f"{2**64}:1", f"1:{2**64 - 1}"],
)
def test_parse_event_id_refuses_what_the_server_never_sends(event_id: str) -> None:
    with pytest.raises(ValueError, match=r"PAGE:SEQ|range"):
        parse_event_id(event_id)


def test_encode_error_shape() -> None:
    assert json.loads(encode_error("not_found", "cache not found: 'x'")) == {
        "error": {"code": "not_found", "message": "cache not found: 'x'"}
    }
