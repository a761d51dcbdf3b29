"""One pipelined connection to Redis for commands: every command of a loop turn goes out in one write.

Redis answers in order, so a FIFO of futures matches replies to commands and one reader task resolves them; a
publisher with many calls in flight costs one write and one read per loop turn instead of a round trip each
(the Redis engine's publish target depends on it). When the connection breaks, every waiting call fails and the
next call reconnects (after a failed connect, not again for ``retry_interval``: while Redis is down, calls fail
fast instead of each waiting for a connect timeout).

How a call fails says whether Redis may have run it: `Unavailable` when its command was never written (no
connection), `OutcomeUnknown` when it was written and the connection broke or went silent before the reply (Redis
may have run it; a publish retried then may be applied twice).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Final

from redis.asyncio.connection import AbstractConnection
from redis.exceptions import RedisError, ResponseError

from tidings.server.core import EngineStats, FailureLog, OutcomeUnknown, Unavailable
from tidings.server.redis_io._patience import Silence, responsive_wait

logger = logging.getLogger("tidings.server.redis")

Arg = bytes | str | int | float
Reply = object


class RedisLink:
    """A pipelined command connection; `call` sends a command and awaits its reply.

    ``connect`` makes a new (not yet connected) redis-py connection. ``on_state`` is told True/False whenever the
    link connects or breaks (for readiness and metrics); ``on_lost`` is called when a connect fails or the
    connection breaks (a Redis Cluster then reads its slot map again).
    """

    def __init__(
        self,
        connect: Callable[[], AbstractConnection],
        *,
        timeout: float = 2.0,
        retry_interval: float = 0.5,
        on_state: Callable[[bool], None] | None = None,
        on_lost: Callable[[], None] | None = None,
        name: str = "redis",
        stats: EngineStats | None = None,
    ) -> None:
        self._make_connection = connect
        self._timeout = timeout
        self._retry_interval = retry_interval
        self._on_state = on_state
        self._on_lost = on_lost
        self._name = name
        # While Redis is down a connect is tried every retry_interval: logged per outage, not per attempt.
        self._connect_log = FailureLog(logger, f"{name}: connecting to Redis")
        self._connection: AbstractConnection | None = None
        self._connecting: asyncio.Future[AbstractConnection] | None = None
        self._waiting: deque[asyncio.Future[Reply]] = deque()
        self._outgoing: list[bytes] = []
        self._flush_scheduled = False
        self._reader: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._disconnecting: set[asyncio.Task[None]] = set()
        self._last_failure = -float("inf")
        self._closed = False
        self.round_trips = 0  # commands answered
        self.stats = stats or EngineStats()

    @property
    def connected(self) -> bool:
        """Whether the connection is up now."""
        return self._connection is not None

    async def call(self, *args: Arg) -> Reply:
        """Send one command and return its reply; a Redis error reply raises `ResponseError`.

        Raises `Unavailable` when Redis cannot be reached or the connection breaks before the reply.
        """
        return await self.send(pack_command(args))

    async def send(self, command: bytes, *, asking: bool = False) -> Reply:
        """`call` with the command already in RESP (`pack_command`, or parts of it packed ahead of time).

        ``asking`` sends ``ASKING`` right before it, on the same connection (a Redis Cluster ``-ASK`` redirection:
        the slot is being migrated to this node).
        """
        connection = self._connection
        if connection is None:
            connection = await self._connect()
            if connection is not self._connection:
                raise Unavailable("the connection to Redis was lost")  # broke while this call waited for it
        loop = asyncio.get_running_loop()
        reply: asyncio.Future[Reply] = loop.create_future()
        if asking:
            # Adjacent on the wire (nothing runs between these appends), so ASKING applies to this command.
            asked: asyncio.Future[Reply] = loop.create_future()
            asked.add_done_callback(_retrieve)
            self._waiting.append(asked)
            self._outgoing.append(_ASKING)
        self._waiting.append(reply)
        self._outgoing.append(command)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        sent = loop.time()
        try:
            return await reply
        finally:
            self.stats.round_trip.observe(loop.time() - sent)

    def _flush(self) -> None:
        """Write every command of this loop turn at once (they belong to the current connection's waiters)."""
        self._flush_scheduled = False
        connection = self._connection
        if connection is None or not self._outgoing:
            return  # broke meanwhile: its waiters were failed already
        writer = connection._writer
        if writer is None:
            self._broken(connection, ConnectionError("not connected"))  # nothing written: `Unavailable`
            return
        try:
            # One buffer: transports handle one large write far better than hundreds of small ones.
            writer.write(b"".join(self._outgoing))
        except Exception as error:
            self._broken(connection, error)  # nothing of this turn was written: its calls get `Unavailable`
            return
        self._outgoing = []

    async def _connect(self) -> AbstractConnection:
        if self._closed:
            raise RuntimeError("the Redis link is closed")
        if self._connecting is None:
            if time.monotonic() - self._last_failure < self._retry_interval:
                raise Unavailable("Redis is unreachable")
            self._connecting = asyncio.get_running_loop().create_future()
            connecting = self._connecting
            try:
                connection = self._make_connection()
                await responsive_wait(connection.connect(), self._timeout)  # type: ignore[no-untyped-call]
            except (OSError, RedisError, TimeoutError) as error:
                self._last_failure = time.monotonic()
                self.stats.errors += 1
                self._connect_log.failed(str(error))
                connecting.set_exception(Unavailable("Redis is unreachable"))
                # Only the waiters who joined this attempt see it; nobody may be awaiting it.
                connecting.exception()
                if self._on_lost is not None:
                    self._on_lost()
                raise Unavailable("Redis is unreachable") from None
            finally:
                self._connecting = None
            self._connection = connection
            self._connect_log.succeeded()
            self._reader = asyncio.create_task(self._read(connection), name=f"tidings-{self._name}-reader")
            self._watchdog = asyncio.create_task(self._watch(connection), name=f"tidings-{self._name}-watchdog")
            if self._on_state is not None:
                self._on_state(True)
            connecting.set_result(connection)
            return connection
        return await asyncio.shield(self._connecting)

    async def _read(self, connection: AbstractConnection) -> None:
        waiting = self._waiting
        try:
            while True:
                try:
                    reply: Reply = await connection.read_response(disable_decoding=True)
                except ResponseError as error:
                    reply = error
                if not waiting:
                    raise ConnectionError("Redis sent a reply nobody asked for")
                future = waiting.popleft()
                self.round_trips += 1
                if future.done():
                    continue
                if isinstance(reply, ResponseError):
                    future.set_exception(reply)
                else:
                    future.set_result(reply)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self._broken(connection, error)

    async def _watch(self, connection: AbstractConnection) -> None:
        """Break a connection that leaves calls unanswered for the timeout (Redis hung, or the network), so that
        they fail within about 1.25 timeouts instead of hanging. Counted in the loop's running time
        (`_patience.Silence`): a reply waiting unread through a stall of this process is not Redis's silence."""
        check = self._timeout / 4
        silence = Silence()
        answered = self.round_trips
        while connection is self._connection:
            await asyncio.sleep(check)
            heard = not self._waiting or self.round_trips != answered
            answered = self.round_trips
            if silence.grew(check, heard) > self._timeout:
                self._broken(connection, TimeoutError(f"no reply for {self._timeout:g} s"))
                return

    def _broken(self, connection: AbstractConnection, error: BaseException) -> None:
        """The connection failed: fail every waiting call and let the next call reconnect.

        The calls whose commands were written may have run: they get `OutcomeUnknown`; those still in
        ``_outgoing`` (the end of the queue) were never written and get `Unavailable`.
        """
        if connection is not self._connection:
            return
        self._connection = None
        self.stats.errors += 1
        if not self._closed:
            logger.warning("%s: Redis connection lost: %s", self._name, error)
        waiting, self._waiting = self._waiting, deque()
        unsent, self._outgoing = len(self._outgoing), []
        written = len(waiting) - unsent
        silent = isinstance(error, TimeoutError)
        for index, future in enumerate(waiting):
            if future.done():
                continue
            if index >= written:
                future.set_exception(Unavailable("the connection to Redis was lost; the request was not sent"))
            elif silent:
                future.set_exception(OutcomeUnknown("Redis did not answer in time; the request may have been applied"))
            else:
                future.set_exception(
                    OutcomeUnknown(
                        "the connection to Redis was lost before its answer; the request may have been applied"
                    )
                )
        for task in (self._reader, self._watchdog):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        self._reader = self._watchdog = None
        closing = asyncio.get_running_loop().create_task(_disconnect(connection))
        self._disconnecting.add(closing)
        closing.add_done_callback(self._disconnecting.discard)
        if self._on_state is not None:
            self._on_state(False)
        if self._on_lost is not None and not self._closed:
            self._on_lost()

    async def close(self) -> None:
        """Fail what is waiting and close the connection; idempotent."""
        self._closed = True
        connection = self._connection
        tasks = [task for task in (self._reader, self._watchdog) if task is not None]
        if connection is not None:
            self._broken(connection, ConnectionError("closed"))
        for task in [*tasks, *self._disconnecting]:
            with contextlib.suppress(asyncio.CancelledError):
                await task


_ASKING: Final = b"*1\r\n$6\r\nASKING\r\n"


def _retrieve(future: asyncio.Future[Reply]) -> None:
    """Mark a reply nobody awaits as retrieved (an ``ASKING``'s ``OK``, or its failure)."""
    if not future.cancelled():
        future.exception()


async def _disconnect(connection: AbstractConnection) -> None:
    with contextlib.suppress(Exception):
        await connection.disconnect()


def pack_command(args: tuple[Arg, ...]) -> bytes:
    """``args`` in RESP (an array of bulk strings); text is UTF-8, numbers in decimal."""
    return b"*%d\r\n" % len(args) + pack_arguments(args)


def pack_arguments(args: tuple[Arg, ...]) -> bytes:
    """``args`` as consecutive RESP bulk strings: a part of a command (`pack_command` adds the array header)."""
    parts = []
    for arg in args:
        if isinstance(arg, str):
            arg = arg.encode()
        elif isinstance(arg, int):
            arg = b"%d" % arg
        elif isinstance(arg, float):
            arg = repr(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(parts)


def as_text(reply: Reply) -> str:
    """A bulk-string reply as text."""
    if isinstance(reply, bytes):
        return reply.decode()
    return str(reply)


def as_list(reply: Reply) -> Sequence[Reply]:
    """An array reply."""
    if not isinstance(reply, list):
        raise TypeError(f"Redis replied {reply!r}, not an array")
    return reply
