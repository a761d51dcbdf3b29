"""One kept-alive HTTP/1.1 connection to a webhook receiver, and the idle ones kept per receiver.

A thin asyncio `Protocol` around `ResponseParser`: a request is written whole, and its answer is awaited
before the next one (no pipelining). Bytes the receiver sends while no request waits, or a close, retire the
connection.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Final, cast

from tidings.server.webhooks._response import MAX_RESPONSE_BYTES, ResponseParser

# (scheme, host, port): connections are kept and reused per receiver.
Origin = tuple[str, str, int]

# An idle connection older than this is closed rather than reused: receivers close theirs after a few seconds
# (uvicorn and Node after 5 s), and reusing one as it closes costs a retry.
KEEPALIVE_EXPIRY: Final = 5.0


class ReceiverClosed(ConnectionError):
    """The receiver closed the connection before its answer was complete.

    ``before_answer``: no byte of the answer had arrived (on a kept-alive connection, the receiver may have
    closed it while idle, before it read the request).
    """

    def __init__(self, before_answer: bool) -> None:
        super().__init__("the receiver closed the connection" + (" before answering" if before_answer else ""))
        self.before_answer = before_answer


class ReceiverConnection(asyncio.Protocol):
    """A connection that carries one request at a time; `exchange` sends one and returns the answer's status."""

    __slots__ = ("_answer", "_parser", "_transport", "closed", "idle_since")

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._parser: ResponseParser | None = None
        self._answer: asyncio.Future[int] | None = None
        self.closed = False
        self.idle_since = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's transports are not its subclasses

    def data_received(self, data: bytes) -> None:
        parser, answer = self._parser, self._answer
        if parser is None or answer is None or answer.done():
            self.close()  # nothing was asked: a receiver out of step
            return
        try:
            complete = parser.feed(data)
        except Exception as error:  # MalformedResponse
            answer.set_exception(error)
            self.close()
            return
        if complete:
            answer.set_result(parser.status)

    def eof_received(self) -> bool:
        self._ended()
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended()

    def _ended(self) -> None:
        self.closed = True
        parser, answer = self._parser, self._answer
        if parser is None or answer is None or answer.done():
            return
        if parser.feed_eof():
            answer.set_result(parser.status)
        else:
            answer.set_exception(ReceiverClosed(before_answer=not parser.started))

    async def exchange(self, request: bytes, max_body: int = MAX_RESPONSE_BYTES) -> tuple[int, bool]:
        """Send ``request`` (a whole HTTP/1.1 request) and wait for the answer: (status, whether this connection
        may carry another request). Raises `ReceiverClosed`, `MalformedResponse` or `OSError`."""
        transport = self._transport
        if transport is None or self.closed or transport.is_closing():
            raise ReceiverClosed(before_answer=True)
        parser = self._parser = ResponseParser(max_body)
        answer = self._answer = asyncio.get_running_loop().create_future()
        transport.write(request)
        try:
            status = await answer
        finally:
            self._parser = self._answer = None
        return status, parser.reusable and not self.closed

    def expire(self) -> None:
        """The request's deadline passed: it fails with `TimeoutError` (the caller drops the connection)."""
        answer = self._answer
        if answer is not None and not answer.done():
            answer.set_exception(TimeoutError("the receiver did not answer in time"))

    def close(self) -> None:
        """Close the connection (its request, if any, fails with `ReceiverClosed`)."""
        self.closed = True
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        """Drop the connection at once (an attempt that ran out of time or was cancelled)."""
        self.closed = True
        if self._transport is not None:
            self._transport.abort()


class IdleConnections:
    """Kept-alive connections per receiver, at most ``limit`` in all; the most recently used is reused first,
    and those idle for `KEEPALIVE_EXPIRY` are closed."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._idle: dict[Origin, list[ReceiverConnection]] = {}
        self._count = 0
        self._swept = time.monotonic()

    def __len__(self) -> int:
        return self._count

    def take(self, origin: Origin) -> ReceiverConnection | None:
        """An open connection to ``origin`` that is not too old, or None."""
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            connection = idle.pop()
            self._count -= 1
            if not connection.closed and now - connection.idle_since < KEEPALIVE_EXPIRY:
                return connection
            connection.close()
        return None

    def put(self, origin: Origin, connection: ReceiverConnection) -> None:
        """Keep ``connection`` for the next request to ``origin`` (or close it, past the limit)."""
        now = connection.idle_since = time.monotonic()
        if now - self._swept > KEEPALIVE_EXPIRY:
            self._sweep(now)
        if self._count >= self._limit:
            connection.close()
            return
        self._idle.setdefault(origin, []).append(connection)
        self._count += 1

    def _sweep(self, now: float) -> None:
        self._swept = now
        for origin, idle in list(self._idle.items()):
            kept: list[ReceiverConnection] = []
            for connection in idle:
                if not connection.closed and now - connection.idle_since < KEEPALIVE_EXPIRY:
                    kept.append(connection)
                else:
                    connection.close()
            self._count -= len(idle) - len(kept)
            if kept:
                self._idle[origin] = kept
            else:
                del self._idle[origin]

    def drain(self) -> Iterator[ReceiverConnection]:
        """Remove and yield every idle connection."""
        idle, self._idle, self._count = self._idle, {}, 0
        for connections in idle.values():
            yield from connections


class Deadlines:
    """Expires requests that outlive their deadline, with one timer for all of them that runs every ``tick``
    seconds while requests are in flight: a timer per request (``asyncio.timeout``) cost more than the rest of
    a delivery on uvloop (27 µs to enter and leave, measured). A request is expired within ``tick`` before its
    deadline, never after it."""

    def __init__(self, tick: float) -> None:
        self._tick = tick
        self._due: dict[ReceiverConnection, float] = {}
        self._timer: asyncio.TimerHandle | None = None

    def watch(self, connection: ReceiverConnection, deadline: float) -> None:
        """Expire ``connection``'s request at ``deadline`` (the loop's clock) unless `done` comes first."""
        self._due[connection] = deadline - self._tick
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._tick, self._check)

    def done(self, connection: ReceiverConnection) -> None:
        """``connection``'s request ended."""
        self._due.pop(connection, None)

    def _check(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        for connection, due in list(self._due.items()):
            if due <= now:
                del self._due[connection]
                connection.expire()
        self._timer = loop.call_later(self._tick, self._check) if self._due else None

    def close(self) -> None:
        """Stop the timer."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._due.clear()
