"""gRPC-over-HTTP/2 details that are not HTTP/2: message prefix, ``grpc-timeout``, ``grpc-message``, metadata."""

from __future__ import annotations

import struct
from typing import Final

# Moved to the shared leaf grpc/_framing.py (gRPC-web uses them too); re-exported for the h2 transport.
from tidings.server.grpc._framing import PREFIX as PREFIX
from tidings.server.grpc._framing import PREFIX_SIZE as PREFIX_SIZE
from tidings.server.grpc._framing import encode_grpc_message as encode_grpc_message
from tidings.server.grpc._framing import metadata_of as metadata_of
from tidings.server.grpc._framing import pack_prefix as pack_prefix
from tidings.server.grpc._framing import parse_timeout as parse_timeout
from tidings.server.grpc._framing import status_headers as status_headers

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
