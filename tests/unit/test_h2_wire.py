"""The gRPC-over-HTTP/2 details of the h2 transport that are not HTTP/2 (``server/grpc/_h2/_wire.py``)."""

from __future__ import annotations

import urllib.parse

import grpc
import hpack
import hyperframe.frame
import pytest

from tidings.server.grpc._h2 import H2Server
from tidings.server.grpc._h2._wire import (
    OK_TRAILER_BLOCK,
    OK_TRAILERS,
    RESPONSE_HEADER_BLOCK,
    RESPONSE_HEADERS,
    encode_grpc_message,
    goaway_frame,
    metadata_of,
    pack_data_header,
    parse_timeout,
    status_headers,
)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(b"1H", 3600.0), (b"2M", 120.0), (b"5S", 5.0), (b"250m", 0.25), (b"1500u", 0.0015), (b"7n", 7e-9)],
    ids=["hours", "minutes", "seconds", "millis", "micros", "nanos"],
)
def test_parse_timeout_reads_every_unit(value: bytes, seconds: float) -> None:
    assert parse_timeout(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", [b"", b"S", b"10", b"10x", b"-1S", b"123456789S"], ids=repr)
def test_parse_timeout_refuses_malformed_values(value: bytes) -> None:
    assert parse_timeout(value) is None


def test_encode_grpc_message_percent_encodes_non_ascii_and_percent() -> None:
    details = "cache 'nö' is 100% gone\n"

    encoded = encode_grpc_message(details)

    assert encoded == b"cache 'n%C3%B6' is 100%25 gone%0A"
    assert urllib.parse.unquote(encoded.decode()) == details


def test_encode_grpc_message_leaves_printable_ascii_as_is() -> None:
    assert encode_grpc_message("cache not found: 'x'") == b"cache not found: 'x'"


def test_metadata_of_drops_pseudo_and_transport_headers_and_decodes_binary() -> None:
    headers = [
        (b":path", b"/a/b"),
        (b"content-type", b"application/grpc"),
        (b"te", b"trailers"),
        (b"grpc-timeout", b"1S"),
        (b"authorization", b"token"),
        (b"trace-bin", b"AAEC"),
    ]

    assert metadata_of(headers) == (("authorization", "token"), ("trace-bin", b"\x00\x01\x02"))


def test_status_headers_carry_status_message_and_trailing_metadata() -> None:
    trailers = status_headers(grpc.StatusCode.RESOURCE_EXHAUSTED, "too big", (("err", "limit"), ("x-bin", b"\x01")))

    assert trailers == [
        (b"grpc-status", b"8"),
        (b"grpc-message", b"too big"),
        (b"err", b"limit"),
        (b"x-bin", b"AQ"),
    ]


def test_data_header_is_a_data_frame_header_followed_by_the_grpc_prefix() -> None:
    size = 70_000 + 5

    header = pack_data_header(size >> 8, size & 0xFF, 0, 0, 7, 0, 70_000)

    assert header[:3] == size.to_bytes(3, "big")
    assert header[3:9] == b"\x00\x00" + (7).to_bytes(4, "big")
    assert header[9:] == b"\x00" + (70_000).to_bytes(4, "big")


def test_goaway_frame_names_the_last_stream_and_the_error() -> None:
    frame = goaway_frame(last_stream_id=9, error_code=1)

    assert frame == (8).to_bytes(3, "big") + b"\x07\x00" + bytes(4) + (9).to_bytes(4, "big") + (1).to_bytes(4, "big")


@pytest.mark.parametrize(
    ("block", "headers"),
    [(RESPONSE_HEADER_BLOCK, RESPONSE_HEADERS), (OK_TRAILER_BLOCK, OK_TRAILERS)],
    ids=["response headers", "OK trailers"],
)
def test_pre_encoded_header_blocks_decode_to_their_headers_and_leave_the_dynamic_table_alone(
    block: bytes, headers: tuple[tuple[bytes, bytes], ...]
) -> None:
    decoder = hpack.Decoder()

    decoded = decoder.decode(block, raw=True)

    assert tuple(decoded) == headers
    assert len(decoder.header_table.dynamic_entries) == 0  # the client's table stays in step with h2's encoder


def test_an_h2_server_makes_frame_reprs_type_and_stream_only() -> None:
    # Arrange
    frame = hyperframe.frame.DataFrame(7, data=b"x" * 1000, flags=["END_STREAM"])

    # Act
    H2Server({}, max_message_length=1024)

    # Assert: what h2 formats for its trace log of every received frame costs no flag sorting or hex dump
    assert repr(frame) == "DataFrame(stream_id=7)"
