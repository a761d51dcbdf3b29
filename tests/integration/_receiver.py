"""A real webhook receiver for the tests: a Starlette app served by uvicorn on a free loopback port, in a thread.

It records every POST (body and headers) and answers from a script: the next scripted status, or 200; a
``hang`` status never answers (until the receiver stops).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections import deque
from dataclasses import dataclass
from typing import Final

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

HANG: Final = -1
WAIT_TIMEOUT = 30.0


@dataclass(frozen=True)
class Delivery:
    """One POST the receiver got."""

    path: str
    body: bytes
    headers: dict[str, str]
    status: int
    client_port: int = 0  # the sender's port: one per connection


class Receiver:
    """``with Receiver() as receiver:`` serves at ``receiver.url``; `wait_for` blocks until enough POSTs came."""

    def __init__(self, *, listening: bool = True, hang_paths: frozenset[str] = frozenset()) -> None:
        """``listening=False``: the port is reserved but refuses connections until `listen` (an outage);
        POSTs to ``hang_paths`` are never answered."""
        self.deliveries: list[Delivery] = []
        self.script: deque[int] = deque()
        self.hang_paths = hang_paths
        self._listening = listening
        self._socket: socket.socket | None = None
        self._changed = threading.Condition()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def answer(self, *statuses: int) -> None:
        """Answer the next POSTs with ``statuses`` (HANG: never), then 200 again."""
        with self._changed:
            self.script.extend(statuses)

    def wait_for(self, count: int, timeout: float = WAIT_TIMEOUT) -> list[Delivery]:
        """The first ``count`` deliveries, once they arrived (AssertionError after ``timeout``)."""
        with self._changed:
            arrived = self._changed.wait_for(lambda: len(self.deliveries) >= count, timeout)
            assert arrived, f"{len(self.deliveries)} of {count} deliveries arrived: {self.deliveries}"
            return list(self.deliveries[:count])

    async def _hook(self, request: Request) -> Response:
        body = await request.body()
        with self._changed:
            status = HANG if request.url.path in self.hang_paths else self.script.popleft() if self.script else 200
            port = request.client.port if request.client else 0
            self.deliveries.append(Delivery(request.url.path, body, dict(request.headers), status, port))
            self._changed.notify_all()
        if status == HANG:
            await asyncio.Event().wait()  # never answers; uvicorn cancels it when the receiver stops
        # A redirect points elsewhere on this receiver: a client that followed it would show up there.
        headers = {"location": "/redirected"} if 300 <= status < 400 else None
        return Response("ok", status_code=status, headers=headers)

    def __enter__(self) -> Receiver:
        sock = self._socket = socket.socket()
        sock.bind(("127.0.0.1", 0))  # bound but not listening: connections are refused
        self.port = sock.getsockname()[1]
        if self._listening:
            self.listen()
        return self

    def listen(self) -> None:
        """Accept connections from now on (the outage, if any, is over)."""
        assert self._socket is not None
        # Listening before the server thread runs: connections wait in the backlog, so no start-up race.
        self._socket.listen(128)
        app = Starlette(routes=[Route("/{path:path}", self._hook, methods=["POST"])])
        config = uvicorn.Config(app, log_config=None, access_log=False, timeout_graceful_shutdown=1)
        server = self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=server.run, kwargs={"sockets": [self._socket]}, daemon=True)
        self._thread.start()

    def __exit__(self, *exc_info: object) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)
        if self._socket is not None:
            self._socket.close()
