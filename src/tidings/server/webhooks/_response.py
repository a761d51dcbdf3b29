"""A webhook receiver's answer, read sans-IO: bytes in, the status (and whether the connection may carry the next
request) out.

Only what a POST's answer needs, and strictly: the status line, the headers, a body framed by Content-Length,
chunked or the end of the connection, and at most a few KiB of it (the body itself is never kept). Anything
else (a malformed head, an upgrade, two framings at once) is `MalformedResponse`: the connection is dropped.
"""

from __future__ import annotations

import enum
import re
from typing import Final

# Receivers answer "ok"; past this many body bytes the answer is read no further (the connection is then
# dropped, not reused).
MAX_RESPONSE_BYTES: Final = 4096
# A status line and headers longer than this are not an answer to a webhook (h11's default bound).
MAX_HEAD_BYTES: Final = 16 * 1024
MAX_CHUNK_LINE: Final = 1024

_TOKEN: Final = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_STATUS_LINE: Final = re.compile(rb"HTTP/1\.([01]) ([1-5][0-9][0-9])(?: [^\r\n]*)?")
_HEX: Final = re.compile(rb"[0-9A-Fa-f]{1,15}")
_BODILESS: Final = frozenset({204, 304})


class MalformedResponse(Exception):
    """The bytes are not a well-formed HTTP/1.1 answer (the ``protocol`` outcome)."""


class _State(enum.Enum):
    HEAD = enum.auto()
    LENGTH = enum.auto()  # Content-Length bytes to go
    CHUNK_SIZE = enum.auto()
    CHUNK_DATA = enum.auto()
    CHUNK_END = enum.auto()  # the CRLF after a chunk's data
    TRAILERS = enum.auto()
    UNTIL_CLOSE = enum.auto()
    DONE = enum.auto()


class ResponseParser:
    """One answer: `feed` it what the connection reads and `feed_eof` when the receiver closes; both return
    True once the answer is complete (`status` then holds; `reusable` says whether the connection may be kept).

    An answer whose body runs past ``max_body`` bytes is complete there, and not reusable.
    """

    __slots__ = ("_buffer", "_left", "_max_body", "_state", "body_read", "reusable", "started", "status")

    def __init__(self, max_body: int = MAX_RESPONSE_BYTES) -> None:
        self._max_body = max_body
        self._buffer = b""
        self._state = _State.HEAD
        self._left = 0
        self.status = 0
        self.reusable = True
        self.started = False  # any byte of the answer arrived
        self.body_read = 0

    @property
    def done(self) -> bool:
        """Whether the answer is complete."""
        return self._state is _State.DONE

    def feed(self, data: bytes) -> bool:
        """Take the next bytes read; True once the answer is complete (bytes after it make it not reusable)."""
        if not data:
            return self.done
        self.started = True
        if self.done:
            self.reusable = False  # unsolicited bytes: nothing is pipelined, so the connection is out of step
            return True
        self._buffer += data
        while not self.done and self._buffer and self._step():
            pass
        if self.done and self._buffer:
            self.reusable = False
        return self.done

    def feed_eof(self) -> bool:
        """The receiver closed: True if that ends the answer (a body framed by the connection's end)."""
        if self._state is _State.UNTIL_CLOSE:
            self._state = _State.DONE
        self.reusable = False
        return self.done

    def _step(self) -> bool:
        """Consume what the buffer holds for the current state; False when more bytes are needed."""
        state = self._state
        if state is _State.HEAD:
            return self._read_head()
        if state is _State.CHUNK_SIZE:
            return self._read_chunk_size()
        if state is _State.TRAILERS:
            return self._read_trailer()
        if state is _State.CHUNK_END:
            if len(self._buffer) < 2:
                return False
            if self._buffer[:2] != b"\r\n":
                raise MalformedResponse("a chunk does not end with CRLF")
            self._consume(2)
            if self._state is _State.CHUNK_END:  # not ended by the body limit meanwhile
                self._state = _State.CHUNK_SIZE
            return True
        # LENGTH, CHUNK_DATA, UNTIL_CLOSE: body bytes, counted and dropped
        taken = len(self._buffer) if state is _State.UNTIL_CLOSE else min(self._left, len(self._buffer))
        taken = min(taken, self._max_body - self.body_read)
        self._consume(taken)
        self._left -= taken
        if self._state is state is not _State.UNTIL_CLOSE and self._left == 0:
            self._state = _State.DONE if state is _State.LENGTH else _State.CHUNK_END
        return True

    def _consume(self, count: int) -> None:
        self._buffer = self._buffer[count:]
        if self._state is not _State.HEAD:
            self.body_read += count
            if self.body_read >= self._max_body:  # read no further: the rest is dropped with the connection
                self._state, self.reusable, self._buffer = _State.DONE, False, b""

    def _read_head(self) -> bool:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > MAX_HEAD_BYTES:
                raise MalformedResponse("the answer's head is too long")
            return False
        head, self._buffer = self._buffer[:end], self._buffer[end + 4 :]
        lines = head.split(b"\r\n")
        status_line = _STATUS_LINE.fullmatch(lines[0])
        if status_line is None:
            raise MalformedResponse(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
        status = int(status_line[2])
        if status == 101:
            raise MalformedResponse("the receiver switched protocols")
        headers = _headers(lines[1:])
        if status < 200:
            return True  # an interim answer (100 Continue, 103 Early Hints): the real one follows
        self.status = status
        connection = {token.strip() for token in headers.get(b"connection", b"").lower().split(b",")}
        self.reusable = status_line[1] == b"1" and b"close" not in connection
        self._frame_body(status, headers)
        return True

    def _frame_body(self, status: int, headers: dict[bytes, bytes]) -> None:
        encoding, length = headers.get(b"transfer-encoding"), headers.get(b"content-length")
        if encoding is not None and length is not None:
            raise MalformedResponse("both Transfer-Encoding and Content-Length")
        if status in _BODILESS:
            self._state = _State.DONE
        elif encoding is not None:
            if encoding.strip().lower() != b"chunked":
                raise MalformedResponse(f"unsupported Transfer-Encoding {encoding[:40]!r}")
            self._state = _State.CHUNK_SIZE
        elif length is not None:
            values = {value.strip() for value in length.split(b",")}
            if len(values) != 1 or not next(iter(values)).isdigit() or len(next(iter(values))) > 18:
                raise MalformedResponse(f"bad Content-Length {length[:40]!r}")
            self._left = int(values.pop())
            self._state = _State.LENGTH if self._left else _State.DONE
        else:
            self._state, self.reusable = _State.UNTIL_CLOSE, False

    def _read_chunk_size(self) -> bool:
        end = self._buffer.find(b"\r\n")
        if end < 0:
            if len(self._buffer) > MAX_CHUNK_LINE:
                raise MalformedResponse("a chunk size line is too long")
            return False
        size = _HEX.fullmatch(self._buffer[:end].split(b";", 1)[0].strip())
        if size is None:
            raise MalformedResponse("a chunk size is not hexadecimal")
        self._left = int(size[0], 16)
        self._consume(end + 2)
        if self._state is _State.CHUNK_SIZE:  # not ended by the body limit meanwhile
            self._state = _State.CHUNK_DATA if self._left else _State.TRAILERS
        return True

    def _read_trailer(self) -> bool:
        end = self._buffer.find(b"\r\n")
        if end < 0:
            if len(self._buffer) > MAX_CHUNK_LINE:
                raise MalformedResponse("a trailer line is too long")
            return False
        self._consume(end + 2)
        if end == 0 and self._state is _State.TRAILERS:
            self._state = _State.DONE
        return True


def _headers(lines: list[bytes]) -> dict[bytes, bytes]:
    """Header fields by lowercase name; repeated fields are joined with commas, as HTTP allows."""
    headers: dict[bytes, bytes] = {}
    for line in lines:
        name, colon, value = line.partition(b":")
        if not colon or _TOKEN.fullmatch(name) is None:
            raise MalformedResponse(f"not a header line: {line[:80]!r}")
        name, value = name.lower(), value.strip(b" \t")
        headers[name] = headers[name] + b", " + value if name in headers else value
    return headers
