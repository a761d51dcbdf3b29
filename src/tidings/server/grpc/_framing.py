"""gRPC-over-HTTP/2 encodings shared by every place that answers in gRPC: the h2 transport's calls
(``grpc/_h2``) and the HTTP port's answer to a gRPC client (``http/_grpc_refusal.py``). A leaf: it imports
nothing of either."""

from __future__ import annotations

from typing import Final

# Bytes a ``grpc-message`` carries as they are: printable ASCII but '%'; gRPC percent-encodes every other byte.
_PLAIN: Final = frozenset(range(0x20, 0x7F)) - {ord("%")}


def encode_grpc_message(details: str) -> bytes:
    """``details`` percent-encoded as the ``grpc-message`` trailer wants it."""
    raw = details.encode("utf-8")
    if all(byte in _PLAIN for byte in raw):
        return raw
    return b"".join(bytes((byte,)) if byte in _PLAIN else b"%%%02X" % byte for byte in raw)
