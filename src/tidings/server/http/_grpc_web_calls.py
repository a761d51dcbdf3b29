"""gRPC-web calls on the HTTP port: Momento's web SDK served by the same method handlers as the gRPC port.

`GrpcWebEndpoint` is an ASGI app in front of the HTTP API's, routing by path (``/cache_client.pubsub.Pubsub/
Subscribe``...) and content type. A gRPC-web request (`grpc_web_mode`) is read with `RequestDecoder` (its one
message refused at its frame header when over the receive limit, or at its ``content-length``), handed to the
method's behaviour (what ``grpc/server.py``'s `method_handlers` built: auth, scopes, limits and the status
mapping all stay there) with a `WebCall` as its `CallContext`, and answered through `ResponseEncoder`: messages,
then the trailers frame; an error before any message as trailers-only (status in the response headers). Any
other request goes to the HTTP API as before (on these paths: its 404).

A server-streaming call is its own `Writer` (ASGI's ``send`` is always awaited, so it never writes without
waiting; uvicorn's ``send`` waits while the socket's buffer is full, which is how a stalled browser falls behind
and gets a discontinuity instead of a buffer). Each batch the core delivers leaves as one body chunk (text mode:
base64 on its own), and the call runs under `LiveRequests`: a browser that closes its XHR ends it at once, and
so does the server's shutdown. Once its request is whole, no HTTP timeout applies to it (``_connections``'s
request deadline ends with the body; the keep-alive timer runs between requests only).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, NoReturn

import grpc
from starlette.types import ASGIApp, Receive, Scope, Send

from tidings.server.core import Limit, Unavailable
from tidings.server.grpc._context import CallAborted, Metadata
from tidings.server.http._grpc_web import (
    GrpcWebError,
    GrpcWebMode,
    MessageTooLarge,
    RequestDecoder,
    ResponseEncoder,
    grpc_web_mode,
    request_metadata,
    trailers_only_headers,
)
from tidings.server.http._live import ClientGone, LiveRequests

Behaviour = Callable[[bytes, Any], Awaitable[Any]]
MethodHandlers = dict[str, dict[str, "grpc.RpcMethodHandler[Any, Any]"]]

_OK: Final = grpc.StatusCode.OK
_TOO_LARGE_METADATA: Final = (("err", Limit.REQUEST_SIZE.value),)


def _peer(scope: Scope) -> str:
    """The client's address as gRPC writes it (``ipv4:127.0.0.1:5000``)."""
    client = scope.get("client")
    if not client:
        return "unknown"
    host, port = client
    return f"ipv6:[{host}]:{port}" if ":" in host else f"ipv4:{host}:{port}"


class SharedFrames:
    """Each response message's chunk (its frame; base64 of it in text mode), made once however many streams
    send it: the servicer hands every subscriber of a topic the same encoded bytes, so each later stream finds
    them here. Concatenated chunks are a valid body (in text mode each is padded base64 on its own, which
    grpc-web's reader decodes). Bounded: emptied when it holds ``max_bytes``."""

    __slots__ = ("_chunks", "_held", "_make", "_max_bytes")

    def __init__(self, encoder: ResponseEncoder, max_bytes: int = 4 << 20) -> None:
        self._make = encoder.message
        self._chunks: dict[bytes, bytes] = {}
        self._held = 0
        self._max_bytes = max_bytes

    def body(self, messages: Sequence[bytes]) -> bytes:
        """One body chunk carrying ``messages``."""
        chunks = self._chunks
        out = []
        for message in messages:
            chunk = chunks.get(message)
            if chunk is None:
                if self._held > self._max_bytes:
                    chunks.clear()
                    self._held = 0
                chunk = chunks[message] = self._make(message)
                self._held += len(chunk) + len(message)
            out.append(chunk)
        return out[0] if len(out) == 1 else b"".join(out)


class WebCall:
    """One gRPC-web call as the servicers see it (`CallContext`; for a stream also `StreamContext` and its
    `Writer`): metadata from the HTTP headers, ``abort`` recording the status and raising `CallAborted`, and
    response messages sent as body chunks, the response headers with the first."""

    __slots__ = ("_frames", "_metadata", "_peer", "_send", "code", "details", "encoder", "started", "trailing_metadata")

    def __init__(
        self, send: Send, frames: SharedFrames, encoder: ResponseEncoder, metadata: Metadata, peer: str
    ) -> None:
        self._send = send
        self._frames = frames
        self.encoder = encoder
        self._metadata = metadata
        self._peer = peer
        self.started = False
        self.code = _OK
        self.details = ""
        self.trailing_metadata: Metadata = ()

    def invocation_metadata(self) -> Metadata:
        """The request's metadata, from its HTTP headers (`request_metadata`)."""
        return self._metadata

    def peer(self) -> str:
        """The client's address, for the log."""
        return self._peer

    async def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata: Metadata = ()) -> NoReturn:
        """Record the call's status (sent when the call ends) and raise `CallAborted`."""
        self.code, self.details, self.trailing_metadata = code, details, trailing_metadata
        raise CallAborted(code.name)

    async def write(self, message: bytes) -> None:
        """Send one response message."""
        await self.write_all((message,))

    def writer(self) -> WebCall:
        """The call itself: the core writes its response messages here."""
        return self

    def try_write(self, chunks: Sequence[bytes]) -> bool:
        """Never: ASGI's ``send`` must be awaited."""
        return False

    def write_all(self, chunks: Sequence[bytes]) -> Awaitable[None]:
        """Send the batch's messages as one body chunk (after the response headers, the first time)."""
        if not self.started:
            return self._start(chunks)
        return self._send({"type": "http.response.body", "body": self._frames.body(chunks), "more_body": True})

    async def _start(self, chunks: Sequence[bytes]) -> None:
        self.started = True
        await self._send({"type": "http.response.start", "status": 200, "headers": self.encoder.headers()})
        await self._send({"type": "http.response.body", "body": self._frames.body(chunks), "more_body": True})

    async def answer(self, response: bytes) -> None:
        """End a unary call that succeeded: its headers, then its message and the OK trailers in one chunk."""
        encoder = self.encoder
        body = encoder.message(response) + encoder.trailers(_OK)
        headers = [*encoder.headers(), (b"content-length", b"%d" % len(body))]
        await self._send({"type": "http.response.start", "status": 200, "headers": headers})
        await self._send({"type": "http.response.body", "body": body})

    async def end(self) -> None:
        """Send the call's status: the trailers frame after its messages, or trailers-only when none was sent."""
        if self.started:
            body = self.encoder.trailers(self.code, self.details, self.trailing_metadata)
            await self._send({"type": "http.response.body", "body": body, "more_body": False})
            return
        headers = trailers_only_headers(self.encoder.mode, self.code, self.details, self.trailing_metadata)
        headers.append((b"content-length", b"0"))
        await self._send({"type": "http.response.start", "status": 200, "headers": headers})
        await self._send({"type": "http.response.body", "body": b""})


class GrpcWebEndpoint:
    """The gRPC-web endpoint of every method in ``handlers`` (by service name, as `method_handlers` builds
    them), in front of ``app``: a gRPC-web ``POST`` to a method's path is a call; every other request goes to
    ``app`` as it did before (one dict lookup on its way)."""

    def __init__(self, handlers: MethodHandlers, max_message_length: int, live: LiveRequests, app: ASGIApp) -> None:
        self._app = app
        self._routes: dict[str, tuple[Behaviour, bool]] = {}
        for service, methods in handlers.items():
            for method, handler in methods.items():
                streaming = handler.unary_stream is not None
                behaviour = handler.unary_stream if streaming else handler.unary_unary
                assert behaviour is not None, f"/{service}/{method} is neither unary nor server-streaming"
                self._routes[f"/{service}/{method}"] = (behaviour, streaming)  # type: ignore[assignment]
        self._max_message_length = max_message_length
        self._live = live
        self._encoders = {mode: ResponseEncoder(mode) for mode in GrpcWebMode}
        self._frames = {mode: SharedFrames(encoder) for mode, encoder in self._encoders.items()}
        # The longest body one message can take, framed (5 bytes) and, in text mode, as base64.
        framed = max_message_length + 5
        self._max_body = {GrpcWebMode.BINARY: framed, GrpcWebMode.TEXT: (framed + 2) // 3 * 4}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self._routes.get(scope["path"]) if scope["type"] == "http" else None
        if route is None:
            await self._app(scope, receive, send)
            return
        mode = content_length = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                mode = grpc_web_mode(value)
            elif name == b"content-length":
                content_length = value
        if mode is None or scope["method"] != "POST":
            await self._app(scope, receive, send)
            return
        call = WebCall(send, self._frames[mode], self._encoders[mode], (), _peer(scope))
        try:
            timeout = self._prepare(call, scope, mode, content_length)
            message = await self._read(receive, mode)
        except GrpcWebError as error:
            call.code, call.details = _status_of(error)
            call.trailing_metadata = _TOO_LARGE_METADATA if isinstance(error, MessageTooLarge) else ()
            await call.end()
            return
        if message is None:
            return  # the client left while sending its request
        behaviour, streaming = route
        try:
            work = _run(behaviour, message, call, timeout)
            response = await (self._live.run(receive, work) if streaming else work)
        except ClientGone:
            return
        except CallAborted:
            pass
        except TimeoutError:
            call.code, call.details = grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"
        except Unavailable as error:  # the server is shutting down
            call.code, call.details = grpc.StatusCode.UNAVAILABLE, error.message
        else:
            if response is not None:  # a unary call's answer: headers, then its message and trailers at once
                await call.answer(response)
                return
        await call.end()

    def _prepare(self, call: WebCall, scope: Scope, mode: GrpcWebMode, content_length: bytes | None) -> float | None:
        """Take the call's metadata and deadline from its headers; refuse a declared body over the limit."""
        if content_length is not None and content_length.isdigit() and int(content_length) > self._max_body[mode]:
            raise MessageTooLarge(int(content_length), self._max_message_length)
        metadata = request_metadata(scope["headers"])
        call._metadata = metadata.metadata
        return metadata.timeout

    async def _read(self, receive: Receive, mode: GrpcWebMode) -> bytes | None:
        """The request's one message (None when the client left first); each frame's length is checked at its
        header, so no more than the limit is held."""
        decoder = RequestDecoder(mode, self._max_message_length)
        messages: list[bytes] = []
        while True:
            event = await receive()
            if event["type"] == "http.disconnect":
                return None
            messages += decoder.feed(event.get("body", b""))
            if len(messages) > 1:
                raise _NotUnary("a unary request holds one message")
            if not event.get("more_body", False):
                break
        decoder.finish()
        if not messages:
            raise _NotUnary("the request holds no message")
        return messages[0]


class _NotUnary(GrpcWebError):
    """A request body without exactly one message."""


def _status_of(error: GrpcWebError) -> tuple[grpc.StatusCode, str]:
    """The status gRPC answers for a body it cannot take: over the limit RESOURCE_EXHAUSTED, else INTERNAL (a
    message count other than one: UNIMPLEMENTED, as grpcio says for a unary call)."""
    if isinstance(error, MessageTooLarge):
        return grpc.StatusCode.RESOURCE_EXHAUSTED, str(error)
    if isinstance(error, _NotUnary):
        return grpc.StatusCode.UNIMPLEMENTED, str(error)
    return grpc.StatusCode.INTERNAL, str(error)


async def _run(behaviour: Behaviour, message: bytes, call: WebCall, deadline: float | None) -> bytes | None:
    """The method's behaviour on ``message``, within the call's deadline: a unary call's response message, or
    None for a stream (which wrote its own)."""
    if deadline is None:
        return await behaviour(message, call)  # type: ignore[no-any-return]
    async with asyncio.timeout(deadline):
        return await behaviour(message, call)  # type: ignore[no-any-return]
