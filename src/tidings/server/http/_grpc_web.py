"""gRPC-web framing, sans-IO: what Momento's web SDK sends and expects on the HTTP port, with no socket in sight.

gRPC-web (grpc/grpc-web's PROTOCOL-WEB) is gRPC's message framing carried over plain HTTP requests: the request
body holds length-prefixed frames (1 flag byte, 4-byte big-endian length, message); the response body holds the
response messages and then the call's trailers as one more frame, flag ``0x80``, whose payload is
``name:value\\r\\n`` lines. In *text* mode (``application/grpc-web-text``, what the web SDK's XHR client uses) both
bodies are base64 of those frames. This module parses and frames; the HTTP layer routes, reads and writes.

- `grpc_web_mode`: which mode a request's ``content-type`` asks for, or None when it is not gRPC-web.
- `RequestDecoder`: fed the request body in chunks as they arrive, yields whole messages; it refuses a frame
  whose declared length is over the limit before holding a byte of it.
- `ResponseEncoder`: response messages and the trailers frame, each returned as one chunk to write as it is (in
  text mode each chunk is padded base64 on its own, which grpc-web's XHR reader decodes as it arrives), and
  `trailers_only_headers` for an error answered before any message.
- `request_metadata`: the call's metadata (what the servicers read: ``authorization``, ``cache``, ``agent``...)
  and ``grpc-timeout`` from the HTTP request headers.

Errors, one tree (the caller maps them to a status in one place; gRPC answers a message over its limit with
``RESOURCE_EXHAUSTED`` and a broken body with ``INTERNAL``)::

    GrpcWebError
     ├── MessageTooLarge     a frame declares more than the limit (refused before it is read)
     ├── CompressedMessage   a frame has the compressed flag (we accept identity only)
     └── MalformedRequest    bad base64, an unknown flag, a body that ends inside a frame, a bad grpc-timeout
"""

from __future__ import annotations

import base64
import binascii
import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import grpc

from tidings.server.grpc._context import Metadata
from tidings.server.grpc._framing import PREFIX, PREFIX_SIZE, metadata_of, pack_prefix, parse_timeout, status_headers

# ---- gRPC-web
_COMPRESSED: Final = 0x01
_TRAILERS: Final = 0x80


class GrpcWebMode(enum.Enum):
    """How gRPC frames travel in the HTTP bodies: as they are, or as base64 text."""

    BINARY = "binary"
    TEXT = "text"


_MODES: Final = {
    b"application/grpc-web": GrpcWebMode.BINARY,
    b"application/grpc-web+proto": GrpcWebMode.BINARY,
    b"application/grpc-web-text": GrpcWebMode.TEXT,
    b"application/grpc-web-text+proto": GrpcWebMode.TEXT,
}
# What our responses say they are; grpc-web's client checks the prefix (``application/grpc-web-text`` for text).
_RESPONSE_CONTENT_TYPES: Final = {
    GrpcWebMode.BINARY: b"application/grpc-web+proto",
    GrpcWebMode.TEXT: b"application/grpc-web-text+proto",
}


def grpc_web_mode(content_type: bytes) -> GrpcWebMode | None:
    """The gRPC-web mode a request's ``content-type`` names (parameters and case ignored), or None when the
    request is not gRPC-web (``application/grpc-web+json`` included: we speak protobuf only)."""
    media_type = content_type.split(b";", 1)[0].strip().lower()
    return _MODES.get(media_type)


class GrpcWebError(Exception):
    """A gRPC-web request body that cannot be served; ``str()`` is a message fit for ``grpc-message``."""


class MessageTooLarge(GrpcWebError):
    """A request frame declares a message longer than the limit; refused at its 5-byte header, before any of
    the message is held."""

    def __init__(self, length: int, limit: int) -> None:
        super().__init__(f"request larger than {limit} bytes")
        self.length = length
        self.limit = limit


class CompressedMessage(GrpcWebError):
    """A request frame has the compressed flag set; we never advertise a ``grpc-encoding`` but identity."""


class MalformedRequest(GrpcWebError):
    """A request that is not gRPC-web as specified: bad base64, an unknown frame flag, a body that ends inside
    a frame, or a malformed ``grpc-timeout``."""


class RequestDecoder:
    """The request body's messages, from body chunks split anywhere (inside a base64 quantum, inside a frame
    header): `feed` each chunk as it arrives and take the whole messages it returns; call `finish` at the end of
    the body. Holds at most one partial frame (its header checked against ``max_message_length`` first) and, in
    text mode, fewer than 4 characters of base64."""

    def __init__(self, mode: GrpcWebMode, max_message_length: int) -> None:
        self._text = mode is GrpcWebMode.TEXT
        self._max_message_length = max_message_length
        self._undecoded = b""  # text mode: base64 characters short of a whole 4-character quantum
        self._frame = bytearray()  # the frame being received: its header, then its message
        self._message_length = -1  # the frame's declared length once its header is whole, else -1

    def feed(self, chunk: bytes) -> list[bytes]:
        """Take the next piece of the body; return the messages it completes (often none or one)."""
        data = self._decode_text(chunk) if self._text else chunk
        messages: list[bytes] = []
        view = memoryview(data)
        while view:
            view = self._take(view, messages)
        return messages

    def finish(self) -> None:
        """Check that the body ended between frames; raises `MalformedRequest` when it did not."""
        if self._undecoded or self._frame or self._message_length >= 0:
            raise MalformedRequest("request body ends inside a gRPC-web frame")

    def _take(self, data: memoryview, messages: list[bytes]) -> memoryview:
        """Add what of ``data`` belongs to the current frame; append its message when whole; return the rest."""
        if self._message_length < 0:
            wanted = PREFIX_SIZE - len(self._frame)
            self._frame += data[:wanted]
            data = data[wanted:]
            if len(self._frame) < PREFIX_SIZE:
                return data
            flag, length = PREFIX.unpack(self._frame)
            self._check_frame(flag, length)
            self._frame.clear()
            self._message_length = length
        wanted = self._message_length - len(self._frame)
        if not self._frame and len(data) >= wanted:  # the whole message in this chunk: no copy through _frame
            messages.append(bytes(data[:wanted]))
        else:
            self._frame += data[:wanted]
            if len(self._frame) < self._message_length:
                return data[wanted:]
            messages.append(bytes(self._frame))
            self._frame.clear()
        self._message_length = -1
        return data[wanted:]

    def _check_frame(self, flag: int, length: int) -> None:
        """Refuse a frame by its header alone: compressed, not a message, or longer than the limit."""
        if flag == _COMPRESSED:
            raise CompressedMessage("compressed gRPC-web messages are not accepted (grpc-encoding: identity)")
        if flag != 0:
            raise MalformedRequest(f"request frame with flag 0x{flag:02x}: a request holds messages only")
        if length > self._max_message_length:
            raise MessageTooLarge(length, self._max_message_length)

    def _decode_text(self, chunk: bytes) -> bytes:
        """The bytes of the whole base64 quanta now received; the rest waits for the next chunk. A padded
        quantum ends one base64 run and another may follow (a client may encode each frame on its own)."""
        text = self._undecoded + chunk if self._undecoded else chunk
        whole = len(text) - len(text) % 4
        self._undecoded = text[whole:]
        text = text[:whole]
        if b"=" not in text:
            return _b64decode(text)
        pieces = []
        start = 0
        while (padding := text.find(b"=", start)) >= 0:
            end = (padding // 4 + 1) * 4  # the end of the padded quantum
            pieces.append(_b64decode(text[start:end]))
            start = end
        pieces.append(_b64decode(text[start:]))
        return b"".join(pieces)


def _b64decode(text: bytes) -> bytes:
    """Strict base64 (alphabet checked, padding only at the end); `MalformedRequest` otherwise."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as error:
        raise MalformedRequest(f"request body is not valid base64 (application/grpc-web-text): {error}") from None


def trailers_frame(code: grpc.StatusCode, details: str = "", trailing_metadata: Metadata = ()) -> bytes:
    """The frame that ends a gRPC-web response: flag ``0x80`` and ``name:value\\r\\n`` lines for
    ``grpc-status``, ``grpc-message`` (percent-encoded as gRPC does) and the trailing metadata (``err``...)."""
    lines = b"".join(name + b":" + value + b"\r\n" for name, value in status_headers(code, details, trailing_metadata))
    return pack_prefix(_TRAILERS, len(lines)) + lines


class ResponseEncoder:
    """The response body of one call, chunk by chunk, in the request's mode: write each returned chunk as it
    is. In text mode each chunk is base64 with its own padding, so a reader that decodes whatever whole
    4-character quanta it has received (grpc-web's XHR reader does) gets every message as soon as it is sent."""

    def __init__(self, mode: GrpcWebMode) -> None:
        self.mode = mode
        self._text = mode is GrpcWebMode.TEXT

    @property
    def content_type(self) -> bytes:
        """The response's ``content-type``."""
        return _RESPONSE_CONTENT_TYPES[self.mode]

    def headers(self) -> list[tuple[bytes, bytes]]:
        """The response headers of a call that answers with messages (its status comes in the trailers frame)."""
        return [(b"content-type", self.content_type)]

    def message(self, message: bytes) -> bytes:
        """The chunk that carries one response message."""
        frame = pack_prefix(0, len(message)) + message
        return base64.b64encode(frame) if self._text else frame

    def trailers(self, code: grpc.StatusCode, details: str = "", trailing_metadata: Metadata = ()) -> bytes:
        """The last chunk: the call's status and trailing metadata as a trailers frame."""
        frame = trailers_frame(code, details, trailing_metadata)
        return base64.b64encode(frame) if self._text else frame


def trailers_only_headers(
    mode: GrpcWebMode, code: grpc.StatusCode, details: str = "", trailing_metadata: Metadata = ()
) -> list[tuple[bytes, bytes]]:
    """The response headers of a call that ends before any message (an error), with an empty body: the status
    travels in the headers, as gRPC's "trailers-only" response does; grpc-web's client reads it from there."""
    return [(b"content-type", _RESPONSE_CONTENT_TYPES[mode]), *status_headers(code, details, trailing_metadata)]


# HTTP request headers that are the browser's or HTTP's, never call metadata. (Those gRPC reserves for itself,
# content-type and grpc-timeout among them, are left out by `metadata_of`.)
_HTTP_ONLY: Final = frozenset(
    {
        b"host",
        b"connection",
        b"keep-alive",
        b"content-length",
        b"transfer-encoding",
        b"upgrade",
        b"accept",
        b"accept-encoding",
        b"accept-language",
        b"cookie",
        b"origin",
        b"referer",
        b"x-grpc-web",
        b"pragma",
        b"cache-control",
    }
)


@dataclass(frozen=True, slots=True)
class RequestMetadata:
    """What a gRPC servicer reads of a call, taken from a gRPC-web request's HTTP headers."""

    metadata: Metadata
    """The call's metadata as ``invocation_metadata()`` returns it: (lower-case name, value) pairs, ``-bin``
    values decoded."""
    timeout: float | None
    """Seconds from ``grpc-timeout`` (the SDK's deadline), None when the request has none."""


def request_metadata(headers: Sequence[tuple[bytes, bytes]]) -> RequestMetadata:
    """The call metadata and deadline in a gRPC-web request's headers (``authorization``, ``cache``, ``agent``,
    ``runtime-version``, ...; ``grpc-timeout`` parsed as gRPC does: ``4999m``, ``10S``, ``1H``). Raises
    `MalformedRequest` for a malformed ``grpc-timeout``, which gRPC answers with ``INTERNAL``."""
    call_headers: list[tuple[bytes, bytes]] = []
    timeout: float | None = None
    for raw_name, value in headers:
        name = raw_name.lower()
        if name == b"grpc-timeout":
            timeout = parse_timeout(value.strip())
            if timeout is None:
                raise MalformedRequest(f"malformed grpc-timeout {value!r}")
        elif name not in _HTTP_ONLY and not name.startswith((b"sec-", b"access-control-")):
            call_headers.append((name, value))
    return RequestMetadata(metadata_of(call_headers), timeout)
