"""gRPC-web calls on the HTTP port: Momento's web SDK served by the same method handlers as the gRPC port.

`GrpcWebEndpoint` is an ASGI app in front of the HTTP API's, routing by path (``/cache_client.pubsub.Pubsub/
Subscribe``...) and content type. A gRPC-web request (`grpc_web_mode`) has its token checked before its body is
read (the gRPC port's `credential_check`, so an unauthenticated caller cannot make the server hold a body), is
read with `RequestDecoder` (its one message refused at its frame header when over the receive limit, or at its
``content-length``; malformed bodies get the gRPC port's statuses), handed to the method's behaviour (what
``grpc/server.py``'s `method_handlers` built: auth, scopes, limits and the status mapping all stay there) with a
`WebCall` as its `CallContext`, and answered through `ResponseEncoder`: messages, then the trailers frame; an
error before any message as trailers-only (status in the response headers). Any other request goes to the HTTP
API as before (on these paths: its 404).

A server-streaming call is its own `Writer` (ASGI's ``send`` is always awaited, so it never writes without
waiting; uvicorn's ``send`` waits while the socket's buffer is full, which is how a stalled browser falls behind
and gets a discontinuity instead of a buffer). Each batch the core delivers leaves as one body chunk (text mode:
base64 on its own), and the call runs under `LiveRequests`: a browser that closes its XHR ends it at once, and
so does the server's shutdown. Once its request is whole, no HTTP timeout applies to it (``_connections``'s
request deadline ends with the body; the keep-alive timer runs between requests only).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from typing import Final, NoReturn

import grpc
from starlette.types import ASGIApp, Receive, Scope, Send

from tidings.server.core import Unavailable
from tidings.server.grpc._context import CallAborted, Metadata
from tidings.server.grpc._framing import COMPRESSED, NO_MESSAGE, NOT_ONE_MESSAGE, REQUEST_TOO_LARGE
from tidings.server.grpc._routes import GrpcMethods, Route, peer_name, routes
from tidings.server.http._grpc_web import (
    CompressedMessage,
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

logger = logging.getLogger("tidings.server.http")

_OK: Final = grpc.StatusCode.OK


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

    __slots__ = (
        "_frames",
        "_peer",
        "_send",
        "code",
        "deadline",
        "details",
        "encoder",
        "metadata",
        "started",
        "trailing_metadata",
    )

    def __init__(self, send: Send, frames: SharedFrames, encoder: ResponseEncoder, peer: str) -> None:
        self._send = send
        self._frames = frames
        self.encoder = encoder
        self._peer = peer
        self.metadata: Metadata = ()  # from the request's headers (`request_metadata`)
        self.deadline: float | None = None  # the loop time its grpc-timeout ends at
        self.started = False
        self.code = _OK
        self.details = ""
        self.trailing_metadata: Metadata = ()

    def invocation_metadata(self) -> Metadata:
        """The request's metadata, from its HTTP headers (`request_metadata`)."""
        return self.metadata

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
    """The gRPC-web endpoint of every gRPC method, in front of ``app``: a gRPC-web ``POST`` to a method's path is
    a call; every other request goes to ``app`` as it did before (one dict lookup on its way)."""

    def __init__(self, methods: GrpcMethods, live: LiveRequests, app: ASGIApp) -> None:
        self._app = app
        self._routes = routes(methods.handlers, methods.fault_injection)
        self._max_message_length = methods.max_message_length
        self._credential_check = methods.credential_check
        self._live = live
        self._encoders = {mode: ResponseEncoder(mode) for mode in GrpcWebMode}
        self._frames = {mode: SharedFrames(encoder) for mode, encoder in self._encoders.items()}
        # The longest body one message can take, framed (5 bytes) and, in text mode, as base64.
        framed = methods.max_message_length + 5
        self._max_body = {GrpcWebMode.BINARY: framed, GrpcWebMode.TEXT: (framed + 2) // 3 * 4}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self._routes.get(scope["path"]) if scope["type"] == "http" else None
        if route is None:
            await self._app(scope, receive, send)
            return
        mode = grpc_web_mode(next((value for name, value in scope["headers"] if name == b"content-type"), b""))
        if mode is None or scope["method"] != "POST":
            await self._app(scope, receive, send)
            return
        try:
            call = self._call(scope, mode, send)
            message = await self._read(receive, mode, call)
        except _Refused as refusal:
            await refusal.call.end()
            return
        if message is not None:  # None: the client left while sending its request
            await self._run(route, message, call, receive)

    def _call(self, scope: Scope, mode: GrpcWebMode, send: Send) -> WebCall:
        """The call, from its headers; `_Refused` when they end it (malformed, a declared body over the limit,
        no valid token), before a byte of its body is read."""
        headers = scope["headers"]
        call = WebCall(send, self._frames[mode], self._encoders[mode], peer_name(scope.get("client")))
        try:
            metadata = request_metadata(headers)
        except GrpcWebError as error:
            raise _Refused(call, *_status_of(error)) from None
        call.metadata = metadata.metadata
        call.deadline = None if metadata.timeout is None else asyncio.get_running_loop().time() + metadata.timeout
        length = next((value for name, value in headers if name == b"content-length"), None)
        if length is not None and length.isdigit() and int(length) > self._max_body[mode]:
            raise _Refused(call, *_status_of(MessageTooLarge(int(length), self._max_message_length)))
        check = self._credential_check
        if check is not None:
            authorization = next((value for name, value in metadata.metadata if name == "authorization"), None)
            unauthenticated = check(scope["path"], authorization if isinstance(authorization, str) else None)
            if unauthenticated is not None:
                raise _Refused(call, grpc.StatusCode.UNAUTHENTICATED, unauthenticated)
        return call

    async def _read(self, receive: Receive, mode: GrpcWebMode, call: WebCall) -> bytes | None:
        """The request's one message (None when the client left first); each frame's length is checked at its
        header, so no more than the limit is held."""
        decoder = RequestDecoder(mode, self._max_message_length)
        messages: list[bytes] = []
        try:
            while True:
                event = await receive()
                if event["type"] == "http.disconnect":
                    return None
                messages += decoder.feed(event.get("body", b""))
                if len(messages) > 1:
                    raise _Refused(call, *NOT_ONE_MESSAGE)
                if not event.get("more_body", False):
                    break
            decoder.finish()
        except GrpcWebError as error:
            raise _Refused(call, *_status_of(error)) from None
        if not messages:
            raise _Refused(call, *NO_MESSAGE)
        return messages[0]

    async def _run(self, route: Route, message: bytes, call: WebCall, receive: Receive) -> None:
        """Run the method on ``message`` within the call's deadline, then send its answer or its status."""
        deadline = asyncio.timeout_at(call.deadline)
        try:
            async with deadline:
                work = route.behaviour(message, call)
                response = await (self._live.run(receive, work) if route.streaming else work)
        except ClientGone:
            return
        except CallAborted:
            pass
        except TimeoutError:
            if not deadline.expired():  # the servicer's own TimeoutError, not the deadline
                _unexpected(call)
            else:
                call.code, call.details = grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"
        except Unavailable as error:  # the server is shutting down
            call.code, call.details = grpc.StatusCode.UNAVAILABLE, error.message
        except Exception:
            _unexpected(call)
        else:
            if not route.streaming:  # a unary call's answer: headers, then its message and trailers at once
                await call.answer(response)
                return
        await call.end()


def _unexpected(call: WebCall) -> None:
    """Log the fault in flight and make the call end UNKNOWN, as the gRPC port does."""
    logger.exception("unexpected fault in a gRPC-web call from %s", call.peer())
    call.code, call.details = grpc.StatusCode.UNKNOWN, "unexpected server error"


class _Refused(Exception):
    """A call answered with its status before its method ran (its `WebCall` and that status set)."""

    def __init__(self, call: WebCall, code: grpc.StatusCode, details: str, metadata: Metadata = ()) -> None:
        super().__init__(details)
        call.code, call.details, call.trailing_metadata = code, details, metadata
        self.call = call


def _status_of(error: GrpcWebError) -> tuple[grpc.StatusCode, str, Metadata]:
    """The status the gRPC port answers for a body it cannot take: over the limit RESOURCE_EXHAUSTED (with
    ``err``), a compressed message UNIMPLEMENTED, anything else malformed INTERNAL."""
    if isinstance(error, MessageTooLarge):
        return grpc.StatusCode.RESOURCE_EXHAUSTED, str(error), REQUEST_TOO_LARGE
    if isinstance(error, CompressedMessage):
        return (*COMPRESSED, ())
    return grpc.StatusCode.INTERNAL, str(error), ()
