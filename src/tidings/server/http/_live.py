"""The owner of long-lived requests (SSE streams, long polls).

Each runs in a task owned here, raced against the client going away, so that a client that disconnects frees
its subscription at once, and `close` (server shutdown) ends every one of them promptly instead of letting the
ASGI server wait out its grace period.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from starlette.types import Receive

from tidings.server.core import Unavailable

T = TypeVar("T")


class ClientGone(Exception):
    """The client disconnected before the request finished."""


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class LiveRequests:
    """Runs long-lived request work until it ends, its client leaves, or the server shuts down."""

    def __init__(self) -> None:
        self._running: set[asyncio.Task[Any]] = set()
        self._closing = False

    @property
    def closing(self) -> bool:
        """Whether `close` was called (the server is shutting down)."""
        return self._closing

    def __len__(self) -> int:
        return len(self._running)

    async def run(self, receive: Receive, work: Coroutine[Any, Any, T]) -> T:
        """Return what ``work`` returns (or raise what it raises).

        Raises `ClientGone` if the client disconnects first and `Unavailable` if the server shuts down first;
        ``work`` is cancelled and awaited in both cases.
        """
        if self._closing:
            work.close()
            raise Unavailable("server is shutting down")
        task = asyncio.create_task(work)
        watcher = asyncio.create_task(_until_disconnect(receive))
        self._running.add(task)
        try:
            await asyncio.wait((task, watcher), return_when=asyncio.FIRST_COMPLETED)
        finally:
            task.cancel()
            watcher.cancel()
            await asyncio.wait((task, watcher))
            self._running.discard(task)
        if not task.cancelled():
            return task.result()
        if watcher.done() and not watcher.cancelled() and watcher.exception() is None:
            raise ClientGone
        raise Unavailable("server is shutting down")

    def close(self) -> None:
        """Refuse new work and cancel what runs (each `run` then raises `Unavailable`)."""
        self._closing = True
        for task in self._running:
            task.cancel()
