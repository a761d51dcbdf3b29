"""gRPC encodings shared by every place that speaks gRPC's framing: the h2 transport's calls (``grpc/_h2``),
the HTTP port's answer to a gRPC client (``http/_grpc_refusal.py``) and gRPC-web (``http/_grpc_web.py``): the
5-byte message prefix, ``grpc-timeout``, ``grpc-message``, request metadata and the status headers. A leaf: it
imports nothing of either."""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Sequence
from typing import Final

import grpc

from tidings.server.core import Limit
from tidings.server.grpc._context import Metadata

# A message's prefix: a flag byte (0: a message; gRPC-web: 0x80, trailers) and its big-endian length.
PREFIX: Final = struct.Struct(">BI")
PREFIX_SIZE: Final = PREFIX.size
pack_prefix: Final = PREFIX.pack

# A request over the receive limit: RESOURCE_EXHAUSTED with this trailing metadata (grpcio cannot give it).
REQUEST_TOO_LARGE: Final[Metadata] = (("err", Limit.REQUEST_SIZE.value),)
# What gRPC answers for a unary request body it cannot take.
NO_MESSAGE: Final = (grpc.StatusCode.INTERNAL, "the request has no message")
COMPRESSED: Final = (grpc.StatusCode.UNIMPLEMENTED, "compressed requests are not supported")
NOT_ONE_MESSAGE: Final = (grpc.StatusCode.INTERNAL, "a unary request needs exactly one message")


def unary_body_refusal(body: bytes | bytearray) -> tuple[grpc.StatusCode, str] | None:
    """Why a unary call's whole request body cannot be served (no message, a compressed one, not exactly one),
    or None."""
    if len(body) < PREFIX_SIZE:
        return NO_MESSAGE
    if body[0] != 0:
        return COMPRESSED
    if int.from_bytes(body[1:PREFIX_SIZE]) != len(body) - PREFIX_SIZE:
        return NOT_ONE_MESSAGE
    return None


# Bytes a ``grpc-message`` carries as they are: printable ASCII but '%'; gRPC percent-encodes every other byte.
_PLAIN: Final = frozenset(range(0x20, 0x7F)) - {ord("%")}


def encode_grpc_message(details: str) -> bytes:
    """``details`` percent-encoded as the ``grpc-message`` trailer wants it."""
    raw = details.encode("utf-8")
    if all(byte in _PLAIN for byte in raw):
        return raw
    return b"".join(bytes((byte,)) if byte in _PLAIN else b"%%%02X" % byte for byte in raw)


# Headers gRPC reads itself; the rest is the call's metadata.
_RESERVED: Final = frozenset({b"content-type", b"te", b"grpc-timeout", b"grpc-encoding", b"grpc-accept-encoding"})
_TIMEOUT_UNITS: Final = {b"H": 3600.0, b"M": 60.0, b"S": 1.0, b"m": 1e-3, b"u": 1e-6, b"n": 1e-9}


def parse_timeout(value: bytes) -> float | None:
    """Seconds of a ``grpc-timeout`` value (at most 8 digits and a unit: ``1S``, ``250m``...), None when
    malformed."""
    unit = _TIMEOUT_UNITS.get(value[-1:])
    digits = value[:-1]
    if unit is None or not digits.isdigit() or len(digits) > 8:
        return None
    return int(digits) * unit


def metadata_of(headers: Sequence[tuple[bytes, bytes]]) -> Metadata:
    """The call metadata in request headers: no pseudo-headers, none gRPC reads itself; ``-bin`` values decoded
    (a value that is not base64 is dropped)."""
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
    """What ends a call: ``grpc-status``, ``grpc-message`` (percent-encoded) and the trailing metadata (``-bin``
    values as unpadded base64)."""
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
