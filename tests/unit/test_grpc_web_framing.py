"""gRPC-web framing (``tidings.server.http._grpc_web``), byte for byte and without sockets: content types, request
bodies split at every offset, response frames and trailers, text-mode chunks as grpc-web's XHR reader takes them,
trailers-only errors, and the request metadata."""

from __future__ import annotations

import base64
import itertools
import struct

import grpc
import pytest

from tidings.server.http._grpc_web import (
    CompressedMessage,
    GrpcWebError,
    GrpcWebMode,
    MalformedRequest,
    MessageTooLarge,
    RequestDecoder,
    ResponseEncoder,
    grpc_web_mode,
    request_metadata,
    trailers_frame,
    trailers_only_headers,
)

LIMIT = 64


def frame(message: bytes, flag: int = 0) -> bytes:
    return struct.pack(">BI", flag, len(message)) + message


# ---------------------------------------------------------------- content types


@pytest.mark.parametrize(
    ("content_type", "mode"),
    [
        (b"application/grpc-web", GrpcWebMode.BINARY),
        (b"application/grpc-web+proto", GrpcWebMode.BINARY),
        (b"application/grpc-web-text", GrpcWebMode.TEXT),
        (b"application/grpc-web-text+proto", GrpcWebMode.TEXT),
        (b"Application/GRPC-Web-Text; charset=utf-8", GrpcWebMode.TEXT),
        (b" application/grpc-web+proto ", GrpcWebMode.BINARY),
        (b"application/grpc", None),
        (b"application/grpc+proto", None),
        (b"application/grpc-web+json", None),
        (b"application/grpc-web-textual", None),
        (b"application/json", None),
        (b"text/plain", None),
        (b"", None),
    ],
    ids=lambda value: value.decode() if isinstance(value, bytes) else str(value),
)
def test_grpc_web_mode_of_content_type(content_type: bytes, mode: GrpcWebMode | None) -> None:
    assert grpc_web_mode(content_type) is mode


# ---------------------------------------------------------------- responses


def test_response_message_binary_is_the_frame() -> None:
    encoder = ResponseEncoder(GrpcWebMode.BINARY)

    assert encoder.content_type == b"application/grpc-web+proto"
    assert encoder.headers() == [(b"content-type", b"application/grpc-web+proto")]
    assert encoder.message(b"abc") == b"\x00\x00\x00\x00\x03abc"
    assert encoder.message(b"") == b"\x00\x00\x00\x00\x00"


def test_trailers_frame_ok() -> None:
    assert trailers_frame(grpc.StatusCode.OK) == b"\x80\x00\x00\x00\x0fgrpc-status:0\r\n"


def test_trailers_frame_with_message_and_err_metadata() -> None:
    lines = b"grpc-status:5\r\ngrpc-message:cache not found: c\r\nerr:not_found\r\n"

    frame_bytes = trailers_frame(grpc.StatusCode.NOT_FOUND, "cache not found: c", (("err", "not_found"),))

    assert frame_bytes == b"\x80" + struct.pack(">I", len(lines)) + lines


@pytest.mark.parametrize(
    ("details", "encoded"),
    [
        ("plain text: ok", b"plain text: ok"),
        ("100% full", b"100%25 full"),
        ("caf\u00e9 \u2603", b"caf%C3%A9 %E2%98%83"),
        ("line\r\nbreak", b"line%0D%0Abreak"),
    ],
    ids=["plain", "percent", "non-ascii", "crlf"],
)
def test_trailers_grpc_message_is_percent_encoded(details: str, encoded: bytes) -> None:
    lines = b"grpc-status:3\r\ngrpc-message:" + encoded + b"\r\n"

    assert trailers_frame(grpc.StatusCode.INVALID_ARGUMENT, details) == b"\x80" + struct.pack(">I", len(lines)) + lines


def test_trailers_binary_metadata_is_unpadded_base64() -> None:
    lines = b"grpc-status:13\r\ndetail-bin:AAEC\r\n"

    assert trailers_frame(grpc.StatusCode.INTERNAL, "", (("detail-bin", b"\x00\x01\x02"),)) == (
        b"\x80" + struct.pack(">I", len(lines)) + lines
    )


def xhr_reader_messages(response_text: bytes) -> list[bytes]:
    """What grpc-web's XHR reader has parsed from the response text received so far: it decodes the whole
    4-character quanta (each on its own, as Closure's decoder does, so padding may end any quantum) and parses
    the whole frames among them."""
    decoded = b"".join(
        base64.b64decode(response_text[i : i + 4]) for i in range(0, len(response_text) - len(response_text) % 4, 4)
    )
    messages = []
    while len(decoded) >= 5:
        flag, length = struct.unpack(">BI", decoded[:5])
        if len(decoded) < 5 + length:
            break
        messages.append(bytes([flag]) + decoded[5 : 5 + length])
        decoded = decoded[5 + length :]
    return messages


def test_response_text_mode_each_chunk_is_padded_base64_on_its_own() -> None:
    encoder = ResponseEncoder(GrpcWebMode.TEXT)
    sent = [b"a", b"bc", b"def", b"x" * 4000]

    chunks = [encoder.message(message) for message in sent]
    chunks.append(encoder.trailers(grpc.StatusCode.OK))

    assert encoder.content_type == b"application/grpc-web-text+proto"
    assert chunks[0] == base64.b64encode(b"\x00\x00\x00\x00\x01a") == b"AAAAAAFh"
    assert chunks[1] == b"AAAAAAJiYw=="
    assert chunks[-1] == base64.b64encode(b"\x80\x00\x00\x00\x0fgrpc-status:0\r\n")
    for chunk in chunks:
        assert len(chunk) % 4 == 0
    # The page gets each message as soon as its chunk arrives, with nothing held back for the next chunk.
    received = b""
    for count, chunk in enumerate(chunks, start=1):
        received += chunk
        assert len(xhr_reader_messages(received)) == count
    assert xhr_reader_messages(received) == [b"\x00" + message for message in sent] + [b"\x80grpc-status:0\r\n"]


def test_response_text_mode_trailers_with_error() -> None:
    encoder = ResponseEncoder(GrpcWebMode.TEXT)

    chunk = encoder.trailers(grpc.StatusCode.PERMISSION_DENIED, "no", (("err", "permission_error"),))

    lines = b"grpc-status:7\r\ngrpc-message:no\r\nerr:permission_error\r\n"
    assert base64.b64decode(chunk) == b"\x80" + struct.pack(">I", len(lines)) + lines


@pytest.mark.parametrize(
    ("mode", "content_type"),
    [(GrpcWebMode.TEXT, b"application/grpc-web-text+proto"), (GrpcWebMode.BINARY, b"application/grpc-web+proto")],
    ids=["text", "binary"],
)
def test_trailers_only_headers_carry_the_status(mode: GrpcWebMode, content_type: bytes) -> None:
    headers = trailers_only_headers(
        mode, grpc.StatusCode.UNAUTHENTICATED, "Invalid signature: \u00e9", (("err", "authentication_error"),)
    )

    assert headers == [
        (b"content-type", content_type),
        (b"grpc-status", b"16"),
        (b"grpc-message", b"Invalid signature: %C3%A9"),
        (b"err", b"authentication_error"),
    ]


def test_trailers_only_headers_without_message() -> None:
    assert trailers_only_headers(GrpcWebMode.TEXT, grpc.StatusCode.NOT_FOUND) == [
        (b"content-type", b"application/grpc-web-text+proto"),
        (b"grpc-status", b"5"),
    ]


# ---------------------------------------------------------------- requests

MESSAGES = [b"first message", b"", b"\x00\xff binary \x80"]
BINARY_BODY = b"".join(frame(message) for message in MESSAGES)
TEXT_BODY = base64.b64encode(BINARY_BODY)


def decode_pieces(mode: GrpcWebMode, pieces: list[bytes], limit: int = LIMIT) -> list[bytes]:
    decoder = RequestDecoder(mode, limit)
    messages = []
    for piece in pieces:
        messages.extend(decoder.feed(piece))
    decoder.finish()
    return messages


def split(body: bytes, *offsets: int) -> list[bytes]:
    bounds = [0, *offsets, len(body)]
    return [body[start:end] for start, end in itertools.pairwise(bounds)]


@pytest.mark.parametrize(
    ("mode", "body"), [(GrpcWebMode.BINARY, BINARY_BODY), (GrpcWebMode.TEXT, TEXT_BODY)], ids=["binary", "text"]
)
def test_request_split_at_every_offset(mode: GrpcWebMode, body: bytes) -> None:
    for offset in range(len(body) + 1):
        assert decode_pieces(mode, split(body, offset)) == MESSAGES, offset


@pytest.mark.parametrize(
    ("mode", "body"), [(GrpcWebMode.BINARY, BINARY_BODY), (GrpcWebMode.TEXT, TEXT_BODY)], ids=["binary", "text"]
)
def test_request_split_at_every_pair_of_offsets(mode: GrpcWebMode, body: bytes) -> None:
    for first, second in itertools.combinations_with_replacement(range(len(body) + 1), 2):
        assert decode_pieces(mode, split(body, first, second)) == MESSAGES, (first, second)


@pytest.mark.parametrize(
    ("mode", "body"), [(GrpcWebMode.BINARY, BINARY_BODY), (GrpcWebMode.TEXT, TEXT_BODY)], ids=["binary", "text"]
)
def test_request_fed_one_byte_at_a_time(mode: GrpcWebMode, body: bytes) -> None:
    decoder = RequestDecoder(mode, LIMIT)
    completed_at = []
    for index in range(len(body)):
        if decoder.feed(body[index : index + 1]):
            completed_at.append(index)
    decoder.finish()

    assert len(completed_at) == len(MESSAGES)


def test_request_text_of_frames_encoded_one_by_one() -> None:
    # A client may base64 each frame on its own: padding then ends a quantum in the middle of the body.
    body = b"".join(base64.b64encode(frame(message)) for message in MESSAGES)
    assert b"=" in body[:-2]

    for offset in range(len(body) + 1):
        assert decode_pieces(GrpcWebMode.TEXT, split(body, offset)) == MESSAGES, offset


def test_request_message_at_the_limit_is_accepted() -> None:
    assert decode_pieces(GrpcWebMode.BINARY, [frame(b"x" * LIMIT)]) == [b"x" * LIMIT]


@pytest.mark.parametrize("mode", [GrpcWebMode.BINARY, GrpcWebMode.TEXT], ids=["binary", "text"])
def test_request_over_the_limit_is_refused_at_its_header(mode: GrpcWebMode) -> None:
    header = struct.pack(">BI", 0, LIMIT + 1)
    decoder = RequestDecoder(mode, LIMIT)
    # In text mode, 8 characters carry the 5-byte header and one byte of the message: no more is needed.
    first = base64.b64encode(header + b"x")[:8] if mode is GrpcWebMode.TEXT else header

    with pytest.raises(MessageTooLarge) as refused:
        decoder.feed(first)

    assert (refused.value.length, refused.value.limit) == (LIMIT + 1, LIMIT)
    assert str(refused.value) == f"request larger than {LIMIT} bytes"


def test_request_over_the_limit_after_a_good_message() -> None:
    decoder = RequestDecoder(GrpcWebMode.BINARY, LIMIT)

    assert decoder.feed(frame(b"ok")) == [b"ok"]
    with pytest.raises(MessageTooLarge):
        decoder.feed(struct.pack(">BI", 0, 2**32 - 1)[:5])


def test_request_compressed_frame_is_refused() -> None:
    with pytest.raises(CompressedMessage, match="compressed"):
        RequestDecoder(GrpcWebMode.BINARY, LIMIT).feed(frame(b"zz", flag=1))


@pytest.mark.parametrize("flag", [0x02, 0x80, 0xFF])
def test_request_frame_with_another_flag_is_malformed(flag: int) -> None:
    with pytest.raises(MalformedRequest, match=f"0x{flag:02x}"):
        RequestDecoder(GrpcWebMode.BINARY, LIMIT).feed(frame(b"zz", flag=flag))


@pytest.mark.parametrize(
    "body",
    [b"@@@@", b"AAAA AAA", b"AB=C", b"A===", b"AAAAAA\nA", b"AA==A=AA"],
    ids=["alphabet", "space", "inner-padding", "triple-padding", "newline", "padding-inside-next"],
)
def test_request_bad_base64_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedRequest, match="base64"):
        RequestDecoder(GrpcWebMode.TEXT, LIMIT).feed(body)


@pytest.mark.parametrize(
    ("mode", "body"),
    [
        (GrpcWebMode.BINARY, b"\x00\x00\x00"),
        (GrpcWebMode.BINARY, frame(b"abc")[:-1]),
        (GrpcWebMode.BINARY, frame(b"abc")[:5]),
        (GrpcWebMode.TEXT, TEXT_BODY[:-1]),
        (GrpcWebMode.TEXT, base64.b64encode(frame(b"abc")[:5])),
    ],
    ids=["inside-header", "inside-message", "after-header", "inside-quantum", "text-after-header"],
)
def test_request_ending_inside_a_frame_is_malformed(mode: GrpcWebMode, body: bytes) -> None:
    decoder = RequestDecoder(mode, LIMIT)
    decoder.feed(body)

    with pytest.raises(MalformedRequest, match="ends inside"):
        decoder.finish()


def test_request_empty_body_has_no_message() -> None:
    assert decode_pieces(GrpcWebMode.TEXT, [b""]) == []


def test_errors_share_one_base() -> None:
    for error in (MessageTooLarge, CompressedMessage, MalformedRequest):
        assert issubclass(error, GrpcWebError)


# ---------------------------------------------------------------- metadata

# What @gomomento/sdk-web 1.118.0 sends from jsdom, as measured (plus the browser's own headers).
SDK_HEADERS = [
    (b"host", b"127.0.0.1:8081"),
    (b"origin", b"http://localhost"),
    (b"referer", b"http://localhost/"),
    (b"accept", b"application/grpc-web-text"),
    (b"content-type", b"application/grpc-web-text"),
    (b"x-grpc-web", b"1"),
    (b"x-user-agent", b"grpc-web-javascript/0.1"),
    (b"authorization", b"token"),
    (b"cache", b"my-cache"),
    (b"agent", b"js-web:topic:1.118.0"),
    (b"runtime-version", b"js-web:WebKit:linux:unknown-device"),
    (b"grpc-timeout", b"4999m"),
    (b"content-length", b"40"),
    (b"sec-fetch-mode", b"cors"),
    (b"connection", b"keep-alive"),
]


def test_request_metadata_of_the_web_sdk() -> None:
    view = request_metadata(SDK_HEADERS)

    assert view.metadata == (
        ("x-user-agent", "grpc-web-javascript/0.1"),
        ("authorization", "token"),
        ("cache", "my-cache"),
        ("agent", "js-web:topic:1.118.0"),
        ("runtime-version", "js-web:WebKit:linux:unknown-device"),
    )
    assert view.timeout == pytest.approx(4.999)


def test_request_metadata_names_are_lower_case_and_bin_values_decoded() -> None:
    view = request_metadata([(b"Authorization", b"t"), (b"Trace-Bin", base64.b64encode(b"\x00\x01").rstrip(b"="))])

    assert view.metadata == (("authorization", "t"), ("trace-bin", b"\x00\x01"))
    assert view.timeout is None


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(b"4999m", 4.999), (b"10S", 10.0), (b"1H", 3600.0), (b"2M", 120.0), (b"500u", 0.0005), (b"7n", 7e-9)],
)
def test_request_metadata_grpc_timeout(value: bytes, seconds: float) -> None:
    assert request_metadata([(b"grpc-timeout", value)]).timeout == pytest.approx(seconds)


@pytest.mark.parametrize("value", [b"", b"10", b"S", b"10s", b"1.5S", b"123456789S", b"-1S"])
def test_request_metadata_malformed_grpc_timeout(value: bytes) -> None:
    with pytest.raises(MalformedRequest, match="grpc-timeout"):
        request_metadata([(b"grpc-timeout", value)])
