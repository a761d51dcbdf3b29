"""gRPC-over-HTTP/2 details that are not HTTP/2: message prefix, ``grpc-timeout``, ``grpc-message``, metadata."""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Sequence
from typing import Final

import grpc

from tidings.server.grpc._context import Metadata
from tidings.server.grpc._framing import encode_grpc_message as encode_grpc_message  # moved there; re-exported

PREFIX: Final = struct.Struct(">BI")
PREFIX_SIZE: Final = PREFIX.size
pack_prefix: Final = PREFIX.pack
# An HTTP/2 frame header (24-bit length as 16 + 8 bits, type, flags, stream id), alone or with the gRPC prefix.
pack_frame_header: Final = struct.Struct(">HBBBI").pack
pack_data_header: Final = struct.Struct(">HBBBIBI").pack
_GOAWAY: Final = struct.Struct(">HBBBIII")
HEADERS_FLAGS: Final = 0x4  # END_HEADERS
TRAILERS_FLAGS: Final = 0x4 | 0x1  # END_HEADERS, END_STREAM


def _literal(name: bytes, value: bytes) -> bytes:
    """An HPACK "literal header field without indexing, new name" (short name and value, no Huffman)."""
    return bytes((0x00, len(name))) + name + bytes((len(value),)) + value


# The header blocks every successful call sends (RESPONSE_HEADERS, below, and OK_TRAILERS), HPACK-encoded once.
# Indexed from the static table or literal without indexing, they leave the dynamic table alone, so h2's encoder
# stays in step with the client's decoder.
RESPONSE_HEADER_BLOCK: Final = (
    b"\x88"  # :status 200 (static index 8)
    + _literal(b"content-type", b"application/grpc")
    + _literal(b"grpc-accept-encoding", b"identity")
)
OK_TRAILER_BLOCK: Final = _literal(b"grpc-status", b"0")
OK_TRAILERS: Final = ((b"grpc-status", b"0"),)  # what OK_TRAILER_BLOCK encodes


def goaway_frame(last_stream_id: int, error_code: int = 0) -> bytes:
    """A GOAWAY frame (type 7, 8-byte payload) on stream 0."""
    return _GOAWAY.pack(0, 8, 0x7, 0, 0, last_stream_id, error_code)


RESPONSE_HEADERS: Final = (
    (b":status", b"200"),
    (b"content-type", b"application/grpc"),
    (b"grpc-accept-encoding", b"identity"),
)

# Headers the transport reads itself; the rest is the call's metadata.
_RESERVED: Final = frozenset({b"content-type", b"te", b"grpc-timeout", b"grpc-encoding", b"grpc-accept-encoding"})

_TIMEOUT_UNITS: Final = {b"H": 3600.0, b"M": 60.0, b"S": 1.0, b"m": 1e-3, b"u": 1e-6, b"n": 1e-9}


def parse_timeout(value: bytes) -> float | None:
    """Seconds of a ``grpc-timeout`` value (``1S``, ``250m``...), None when malformed."""
    unit = _TIMEOUT_UNITS.get(value[-1:])
    digits = value[:-1]
    if unit is None or not digits.isdigit() or len(digits) > 8:
        return None
    return int(digits) * unit


def metadata_of(headers: Sequence[tuple[bytes, bytes]]) -> Metadata:
    """The call metadata in request headers: no pseudo-headers, no transport headers; ``-bin`` values decoded."""
    metadata: list[tuple[str, str | bytes]] = []
    for name, value in headers:
        if name[:1] == b":" or name in _RESERVED:
            continue
        if name.endswith(b"-bin"):
            try:
                metadata.append((name.decode("ascii"), base64.b64decode(value + b"==")))
            except (binascii.Error, ValueError):
                continue
        else:
            metadata.append((name.decode("ascii", "replace"), value.decode("latin-1")))
    return tuple(metadata)


def status_headers(code: grpc.StatusCode, details: str, trailing_metadata: Metadata) -> list[tuple[bytes, bytes]]:
    """The trailers that end a call: ``grpc-status``, ``grpc-message`` and the trailing metadata."""
    trailers = [(b"grpc-status", b"%d" % code.value[0])]
    if details:
        trailers.append((b"grpc-message", encode_grpc_message(details)))
    for key, value in trailing_metadata:
        name = key.lower().encode("ascii")
        if isinstance(value, bytes):
            trailers.append((name, base64.b64encode(value).rstrip(b"=")))
        else:
            trailers.append((name, value.encode("latin-1")))
    return trailers
