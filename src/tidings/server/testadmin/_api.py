"""Momento Local's test-admin HTTP API: ``GET /block`` and ``GET /unblock`` on a port of its own.

Momento's SDK tests call it with a plain ``fetch`` and read nothing but that it answered, so it is a few lines
of HTTP/1.1 over asyncio rather than a second web application: one request per connection, answered and
closed. Requests are bounded in size and time like every other port's (README *What the server guards
against*). Only ``GET`` runs an action: a ``HEAD`` must change nothing (RFC 9110 calls it safe), so it is answered
``405`` like any other method.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Final

logger = logging.getLogger("tidings.server.testadmin")

# A request head larger than this, or slower than `HEAD_TIMEOUT`, is dropped.
MAX_HEAD: Final = 8 * 1024
HEAD_TIMEOUT: Final = 10.0


def answer(request_line: bytes, actions: dict[str, Callable[[], str]]) -> tuple[int, str]:
    """The status and text answering ``request_line`` (``GET /block HTTP/1.1``): ``GET`` of a path in
    ``actions`` runs that action, which returns what to say; any other method runs nothing (405)."""
    parts = request_line.decode("latin-1").split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        return 400, "bad request"
    method, target = parts[0], parts[1].split("?", 1)[0]
    action = actions.get(target)
    if action is None:
        return 404, f"unknown path {target}; this is the test-admin API: GET {', GET '.join(actions)}"
    if method != "GET":
        return 405, f"{target} takes GET"
    return 200, action()


_REASONS: Final = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}


def response(head: bytes, actions: dict[str, Callable[[], str]]) -> bytes:
    """The whole HTTP/1.1 response to the request whose head (request line and headers) is ``head``: `answer`'s
    status and text, closing the connection; no body for a ``HEAD``."""
    status, text = answer(head.split(b"\r\n", 1)[0], actions)
    body = (text + "\n").encode()
    allow = "Allow: GET\r\n" if status == 405 else ""
    return (
        f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n{allow}Connection: close\r\n\r\n".encode()
        + (b"" if head.startswith(b"HEAD ") else body)
    )


class TestAdminApi:
    """Serves ``actions`` (path -> what it does, returning a line of text) over HTTP/1.1."""

    __test__ = False  # not a pytest test class, whatever its name

    def __init__(self, actions: dict[str, Callable[[], str]]) -> None:
        self._actions = actions
        self._listener: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (0: a free port) and return the bound port; OSError if it cannot."""
        self._listener = await asyncio.start_server(self._serve, host.strip("[]") or None, port, limit=MAX_HEAD)
        return int(self._listener.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            async with asyncio.timeout(HEAD_TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
            writer.write(response(head, self._actions))
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass  # slow, oversized or abandoned: dropped
        finally:
            writer.close()
            self._handlers.discard(task)

    async def close(self) -> None:
        """Stop listening and drop requests in progress."""
        if self._listener is not None:
            self._listener.close()
        handlers = list(self._handlers)
        for handler in handlers:
            handler.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
