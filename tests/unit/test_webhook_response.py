"""The webhook client's answer parser, sans-IO: bytes in, status and reusability out, split at every byte."""

from __future__ import annotations

import pytest

from tidings.server.webhooks._response import MAX_RESPONSE_BYTES, MalformedResponse, ResponseParser

CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;ext=1\r\nok\r\n3\r\n!!!\r\n0\r\nX-Trailer: 1\r\n\r\n"
LENGTH = b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\nX-Other: a\r\n\r\nok"


def _feed_split(answer: bytes, at: int) -> ResponseParser:
    parser = ResponseParser()
    assert not parser.feed(answer[:at])
    assert parser.feed(answer[at:])
    return parser


@pytest.mark.parametrize("answer", [CHUNKED, LENGTH], ids=["chunked", "content-length"])
def test_response_parser_reads_an_answer_split_anywhere(answer: bytes) -> None:
    for at in range(1, len(answer)):
        # Act
        parser = _feed_split(answer, at)

        # Assert
        assert parser.status in (200, 201)
        assert parser.reusable


def test_response_parser_reads_a_bodiless_answer_and_skips_interim_ones() -> None:
    parser = ResponseParser()

    assert parser.feed(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n")

    assert (parser.status, parser.reusable) == (204, True)


@pytest.mark.parametrize(
    ("answer", "reusable"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", False),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", False),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\n", False),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0, 0\r\n\r\n", True),
    ],
    ids=["connection-close", "http-1.0", "unsolicited-bytes", "repeated-length"],
)
def test_response_parser_says_whether_the_connection_may_be_reused(answer: bytes, reusable: bool) -> None:
    parser = ResponseParser()

    assert parser.feed(answer)

    assert parser.reusable is reusable


def test_response_parser_stops_at_the_body_limit() -> None:
    parser = ResponseParser()
    head = b"HTTP/1.1 500 Oops\r\nContent-Length: 1000000\r\n\r\n"

    complete = parser.feed(head + b"x" * (MAX_RESPONSE_BYTES + 10))

    assert complete
    assert (parser.status, parser.reusable, parser.body_read) == (500, False, MAX_RESPONSE_BYTES)


def test_response_parser_ends_a_body_framed_by_the_close_at_the_close() -> None:
    parser = ResponseParser()
    assert not parser.feed(b"HTTP/1.1 200 OK\r\n\r\nsome body")

    assert parser.feed_eof()

    assert (parser.status, parser.reusable) == (200, False)


def test_response_parser_is_incomplete_when_the_receiver_closes_mid_body() -> None:
    parser = ResponseParser()
    parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nok")

    assert not parser.feed_eof()
    assert parser.started


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/2 200\r\n\r\n",
        b"HTTP/1.1 20 OK\r\n\r\n",
        b"ICY 200 OK\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n folded: value\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokXX",
    ],
    ids=[
        "http-2",
        "short-status",
        "not-http",
        "upgrade",
        "no-colon",
        "folded",
        "negative-length",
        "two-lengths",
        "other-encoding",
        "two-framings",
        "bad-chunk-size",
        "chunk-without-crlf",
    ],
)
def test_response_parser_refuses_what_is_not_a_plain_answer(answer: bytes) -> None:
    with pytest.raises(MalformedResponse):
        ResponseParser().feed(answer)


def test_response_parser_refuses_an_endless_head() -> None:
    parser = ResponseParser()
    parser.feed(b"HTTP/1.1 200 OK\r\n")

    with pytest.raises(MalformedResponse):
        parser.feed(b"X-Padding: " + b"a" * 20_000)
