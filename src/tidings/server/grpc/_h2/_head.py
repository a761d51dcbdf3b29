"""A request's HEADERS as the transport reads them (`RequestHead`), and the per-connection cache of decoded
header blocks that lets a repeated block skip HPACK decoding (`HeadCache`, over a `CountedTable`).

A gRPC client sends the same headers on every call of a method: after its first call, grpc-core's encoder has
them in the HPACK dynamic table, and each later call's block is the same few index bytes. Identical bytes decode
to identical headers as long as the decoder's dynamic table is unchanged, and decoding them leaves it unchanged
when they only refer to it. So a block whose decoding changed nothing is kept with what it decoded to, and valid
until the table next changes (`CountedTable.changes`): a later HEADERS frame with the same bytes is that request
again, with no HPACK decoding, no header parsing and no metadata decoding (measured: HPACK decoding alone was a
fifth of a publish's server CPU).
"""

from __future__ import annotations

from typing import Final

import hpack.table

from tidings.server.grpc._context import Metadata
from tidings.server.grpc._framing import metadata_of

# Decoded blocks one connection keeps: a client calls a handful of methods with a handful of header sets.
HEAD_CACHE_SIZE: Final = 32


class RequestHead:
    """What the transport reads of a request's headers, and its metadata (decoded on first use)."""

    __slots__ = (
        "_metadata",
        "authorization",
        "cacheable",
        "content_type",
        "headers",
        "method",
        "path",
        "size",
        "te",
        "timeout",
    )

    def __init__(self, headers: list[tuple[bytes, bytes]]) -> None:
        self.headers = headers
        self._metadata: Metadata | None = None
        method = path = content_type = te = timeout = b""
        authorization: bytes | None = None
        size = 32 * len(headers)  # decoded size (RFC 7540 6.5.2)
        cacheable = True
        for name, value in headers:
            size += len(name) + len(value)
            if name[:1] == b":":
                if name == b":path":
                    path = value
                elif name == b":method":
                    method = value
            elif name == b"content-type":
                content_type = value
            elif name == b"te":
                te = value
            elif name == b"grpc-timeout":
                timeout = value
            elif name == b"authorization" and authorization is None:
                authorization = value
            elif name == b"content-length":  # h2 checks the body against it: such a request takes h2's path
                cacheable = False
        self.method = method
        self.path = path.decode("ascii", "replace")
        self.content_type = content_type
        self.te = te
        self.timeout = timeout
        self.authorization = authorization
        self.size = size
        self.cacheable = cacheable

    def metadata(self) -> Metadata:
        """The call metadata (`metadata_of`), decoded once for every call that shares this head."""
        metadata = self._metadata
        if metadata is None:
            metadata = self._metadata = metadata_of(self.headers)
        return metadata


class CountedTable(hpack.table.HeaderTable):
    """hpack's dynamic table, counting its changes (an entry added, the size changed): a decoded block is valid
    for the same bytes only while the count is the one it was decoded at."""

    changes = 0

    def add(self, name: bytes, value: bytes) -> None:
        self.changes += 1
        super().add(name, value)

    @property
    def maxsize(self) -> int:
        return self._maxsize

    @maxsize.setter
    def maxsize(self, newmax: int) -> None:
        self.changes += 1
        hpack.table.HeaderTable.maxsize.fset(self, newmax)  # type: ignore[attr-defined]


class HeadCache:
    """A connection's decoded header blocks, by their bytes, valid while its decoder's table is unchanged."""

    __slots__ = ("_heads", "_table", "_valid_at")

    def __init__(self, table: CountedTable) -> None:
        self._table = table
        self._heads: dict[bytes, RequestHead] = {}
        self._valid_at = table.changes

    def get(self, block: bytes) -> RequestHead | None:
        """What ``block`` decodes to now, if known."""
        if self._valid_at != self._table.changes:
            self._heads.clear()
            self._valid_at = self._table.changes
            return None
        return self._heads.get(block)

    @property
    def changes(self) -> int:
        """The table's count of changes, to read before decoding a block and pass to `keep` after."""
        return self._table.changes

    def keep(self, block: bytes, head: RequestHead, changes_before: int) -> None:
        """Remember that ``block`` decoded to ``head``, if decoding it (from ``changes_before``) changed nothing."""
        if not head.cacheable or self._table.changes != changes_before:
            return
        if self._valid_at != changes_before:
            self._heads.clear()
            self._valid_at = changes_before
        elif len(self._heads) >= HEAD_CACHE_SIZE:
            self._heads.clear()
        self._heads[block] = head
