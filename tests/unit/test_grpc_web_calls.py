"""The gRPC-web endpoint of the HTTP port (``server/http/_grpc_web_calls.py``), in process with stand-in method
handlers: routing, unary answers, trailers-only errors, streams chunk by chunk, deadlines, clients leaving."""

from __future__ import annotations

import asyncio
import base64
import struct
from collections.abc import MutableMapping
from typing import Any, NoReturn

import grpc
import pytest

from tidings.server.grpc import _framing
from tidings.server.grpc._context import StreamContext
from tidings.server.grpc._h2 import _wire
from tidings.server.grpc._routes import GrpcMethods
from tidings.server.http import _grpc_web
from tidings.server.http._grpc_web_calls import GrpcWebEndpoint
from tidings.server.http._live import LiveRequests

LIMIT = 1000


async def echo(request: bytes, context: Any) -> bytes:
    return b"echo:" + request + b":" + str(dict(context.invocation_metadata()).get("cache")).encode()


async def refuse(request: bytes, context: Any) -> NoReturn:
    await context.abort(grpc.StatusCode.NOT_FOUND, "no such cache", trailing_metadata=(("err", "why"),))
    raise AssertionError("abort raises")


async def fail(request: bytes, context: Any) -> NoReturn:
    raise (TimeoutError if request == b"timeout" else RuntimeError)("a bug")


def credential_check(path: str, authorization: str | None) -> str | None:
    """Stands in for the gRPC port's token check: "valid" is the one valid token."""
    return None if authorization in ("valid", None) else "invalid token"


async def stream(request: bytes, context: StreamContext) -> None:
    writer = context.writer()
    await writer.write_all([b"one"])
    await writer.write_all([b"two", b"three"])
    if request == b"forever":
        await asyncio.Event().wait()


HANDLERS = {
    "test.Service": {
        "Echo": grpc.unary_unary_rpc_method_handler(echo),
        "Refuse": grpc.unary_unary_rpc_method_handler(refuse),
        "Fail": grpc.unary_unary_rpc_method_handler(fail),
        "Stream": grpc.unary_stream_rpc_method_handler(stream),
    }
}


async def inner_app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 404, "headers": []})
    await send({"type": "http.response.body", "body": b"inner"})


def frame(message: bytes, flag: int = 0) -> bytes:
    return struct.pack(">BI", flag, len(message)) + message


class Exchange:
    """One request through the endpoint: the body events it receives, what it sends."""

    def __init__(self, body_chunks: list[bytes], disconnect: asyncio.Event | None = None) -> None:
        self.events: list[dict[str, Any]] = [
            {"type": "http.request", "body": chunk, "more_body": index < len(body_chunks) - 1}
            for index, chunk in enumerate(body_chunks)
        ]
        self.sent: list[MutableMapping[str, Any]] = []
        self.received = 0
        self.disconnect = disconnect

    async def receive(self) -> dict[str, Any]:
        self.received += 1
        if self.events:
            return self.events.pop(0)
        if self.disconnect is not None:
            await self.disconnect.wait()
            return {"type": "http.disconnect"}
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def send(self, message: MutableMapping[str, Any]) -> None:
        self.sent.append(message)

    @property
    def headers(self) -> dict[bytes, bytes]:
        return dict(self.sent[0]["headers"])

    @property
    def body(self) -> bytes:
        return b"".join(message.get("body", b"") for message in self.sent[1:])


async def call(
    path: str,
    body_chunks: list[bytes],
    content_type: bytes = b"application/grpc-web+proto",
    extra: tuple[tuple[bytes, bytes], ...] = (),
    disconnect: asyncio.Event | None = None,
) -> Exchange:
    endpoint = GrpcWebEndpoint(GrpcMethods(HANDLERS, LIMIT, credential_check), LiveRequests(), inner_app)
    exchange = Exchange(body_chunks, disconnect)
    headers = [(b"content-type", content_type), (b"cache", b"c1"), *extra]
    scope = {"type": "http", "method": "POST", "path": path, "headers": headers, "client": ("127.0.0.1", 5)}
    await endpoint(scope, exchange.receive, exchange.send)
    return exchange


def test_helpers_are_shared_not_copied() -> None:
    for name in ("PREFIX", "pack_prefix", "parse_timeout", "metadata_of", "status_headers"):
        assert getattr(_wire, name) is getattr(_framing, name), name
    for name in ("PREFIX", "pack_prefix", "parse_timeout", "metadata_of", "status_headers"):
        assert getattr(_grpc_web, name) is getattr(_framing, name), name


async def test_unary_call_answers_its_message_then_ok_trailers_with_a_length() -> None:
    exchange = await call("/test.Service/Echo", [frame(b"hi")])

    assert exchange.sent[0]["status"] == 200
    assert exchange.headers[b"content-type"] == b"application/grpc-web+proto"
    assert exchange.body == frame(b"echo:hi:c1") + frame(b"grpc-status:0\r\n", 0x80)
    assert exchange.headers[b"content-length"] == str(len(exchange.body)).encode()


async def test_text_request_split_across_reads_is_one_message() -> None:
    text = base64.b64encode(frame(b"split"))
    exchange = await call(
        "/test.Service/Echo", [text[:3], text[3:7], text[7:]], content_type=b"application/grpc-web-text"
    )

    body = exchange.body
    pieces = [base64.b64decode(body[i : i + 4]) for i in range(0, len(body), 4)]
    assert b"".join(pieces) == frame(b"echo:split:c1") + frame(b"grpc-status:0\r\n", 0x80)


async def test_abort_before_any_message_is_trailers_only() -> None:
    exchange = await call("/test.Service/Refuse", [frame(b"x")])

    assert exchange.headers[b"grpc-status"] == b"5"
    assert exchange.headers[b"grpc-message"] == b"no such cache"
    assert exchange.headers[b"err"] == b"why"
    assert exchange.body == b""


async def test_stream_sends_each_batch_as_one_chunk_then_trailers() -> None:
    exchange = await call("/test.Service/Stream", [frame(b"")])

    chunks = [message["body"] for message in exchange.sent[1:]]
    assert chunks == [frame(b"one"), frame(b"two") + frame(b"three"), frame(b"grpc-status:0\r\n", 0x80)]
    assert [message.get("more_body") for message in exchange.sent[1:]] == [True, True, False]


async def test_stream_ends_at_its_grpc_timeout() -> None:
    exchange = await call("/test.Service/Stream", [frame(b"forever")], extra=((b"grpc-timeout", b"50m"),))

    assert exchange.sent[-1]["body"] == frame(b"grpc-status:4\r\ngrpc-message:Deadline Exceeded\r\n", 0x80)


async def test_client_leaving_ends_the_stream_without_an_answer() -> None:
    gone = asyncio.Event()
    task = asyncio.create_task(call("/test.Service/Stream", [frame(b"forever")], disconnect=gone))
    await asyncio.sleep(0.01)
    gone.set()
    exchange = await asyncio.wait_for(task, 1)

    assert [message.get("more_body") for message in exchange.sent[1:]] == [True, True]


async def test_declared_body_over_the_limit_is_refused_unread() -> None:
    exchange = await call("/test.Service/Echo", [b""], extra=((b"content-length", b"%d" % (LIMIT + 6)),))

    assert exchange.received == 0
    assert exchange.headers[b"grpc-status"] == b"8"
    assert exchange.headers[b"err"] == b"request_size_limit_exceeded"


async def test_frame_over_the_limit_is_refused_at_its_header() -> None:
    exchange = await call("/test.Service/Echo", [frame(b"x" * (LIMIT + 1))[:5], b"never read"])

    assert exchange.received == 1
    assert exchange.headers[b"grpc-status"] == b"8"


@pytest.mark.parametrize(
    ("body", "status"),
    [([b""], _framing.NO_MESSAGE), ([frame(b"a") + frame(b"b")], _framing.NOT_ONE_MESSAGE)],
    ids=["none", "two"],
)
async def test_unary_request_without_exactly_one_message_is_refused_as_on_the_grpc_port(
    body: list[bytes], status: tuple[grpc.StatusCode, str]
) -> None:
    exchange = await call("/test.Service/Echo", body)

    assert exchange.headers[b"grpc-status"] == b"%d" % status[0].value[0] == b"13"
    assert exchange.headers[b"grpc-message"] == status[1].encode()


async def test_compressed_message_is_unimplemented_as_on_the_grpc_port() -> None:
    exchange = await call("/test.Service/Echo", [frame(b"x", 0x01)])

    assert exchange.headers[b"grpc-status"] == b"12"
    assert exchange.headers[b"grpc-message"] == _framing.COMPRESSED[1].encode()


async def test_invalid_token_is_refused_before_the_body_is_read() -> None:
    exchange = await call("/test.Service/Echo", [frame(b"x" * 500)], extra=((b"authorization", b"forged"),))

    assert exchange.received == 0
    assert exchange.headers[b"grpc-status"] == b"16"
    assert exchange.headers[b"grpc-message"] == b"invalid token"


async def test_valid_token_goes_on_to_the_method() -> None:
    exchange = await call("/test.Service/Echo", [frame(b"x")], extra=((b"authorization", b"valid"),))

    assert exchange.body == frame(b"echo:x:c1") + frame(b"grpc-status:0\r\n", 0x80)


@pytest.mark.parametrize("request_body", [b"bug", b"timeout"], ids=["error", "its-own-timeout"])
async def test_unexpected_fault_ends_the_call_unknown(request_body: bytes) -> None:
    # A servicer's own TimeoutError (no grpc-timeout given) is a fault too, not DEADLINE_EXCEEDED.
    exchange = await call("/test.Service/Fail", [frame(request_body)])

    assert exchange.headers[b"grpc-status"] == b"2"
    assert exchange.headers[b"grpc-message"] == b"unexpected server error"


@pytest.mark.parametrize(
    ("path", "content_type"),
    [("/test.Service/Echo", b"application/json"), ("/test.Service/Echo", b"application/grpc"), ("/other", None)],
)
async def test_what_is_not_a_grpc_web_call_goes_to_the_http_api(path: str, content_type: bytes | None) -> None:
    exchange = await call(path, [frame(b"x")], content_type=content_type or b"application/grpc-web")

    assert exchange.sent[0]["status"] == 404
    assert exchange.body == b"inner"
