"""The node's one PUBSUB connection: channel subscriptions confirmed, messages handed to local fan-out.

The reader never awaits a subscriber: it hands each channel message to ``deliver`` (the topic's mirror), which
appends it and wakes that topic's subscriptions. A supervisor reconnects a broken connection, resubscribes every
wanted channel in batches and then calls ``resubscribed`` so that topics backfill what they missed; a PING
sent when the connection was quiet for ``probe_interval`` must be answered within ``probe_timeout``, or the
connection counts as broken (a connection can die silently, or a failover can leave it subscribed to nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from redis.asyncio.connection import AbstractConnection
from redis.exceptions import RedisError

from tidings.server.core import EngineStats, Unavailable

logger = logging.getLogger("tidings.server.redis")

_BATCH = 500  # channels per SUBSCRIBE when resubscribing


class ChannelSubscriber:
    """Subscribes channels on one connection and delivers their messages.

    ``sharded`` uses SSUBSCRIBE (Redis Cluster's sharded pub/sub) instead of SUBSCRIBE.
    """

    def __init__(
        self,
        connect: Callable[[], AbstractConnection],
        deliver: Callable[[bytes, bytes], None],
        resubscribed: Callable[[], None],
        *,
        sharded: bool = False,
        timeout: float = 2.0,
        probe_interval: float = 1.0,
        retry_interval: float = 0.5,
        on_state: Callable[[bool], None] | None = None,
        stats: EngineStats | None = None,
    ) -> None:
        self._make_connection = connect
        self._deliver = deliver
        self._resubscribed = resubscribed
        self._subscribe_command = b"SSUBSCRIBE" if sharded else b"SUBSCRIBE"
        self._unsubscribe_command = b"SUNSUBSCRIBE" if sharded else b"UNSUBSCRIBE"
        self._message_kind = b"smessage" if sharded else b"message"
        self._confirm_kind = b"ssubscribe" if sharded else b"subscribe"
        self._timeout = timeout
        self._probe_interval = probe_interval
        self._retry_interval = retry_interval
        self._on_state = on_state
        self._connection: AbstractConnection | None = None
        self._wanted: set[bytes] = set()
        self._confirmed: set[bytes] = set()
        self._confirming: dict[bytes, asyncio.Future[None]] = {}
        self._heard = asyncio.Event()  # anything arrived since the last probe
        self._supervisor: asyncio.Task[None] | None = None
        self._first_connection: asyncio.Future[None] | None = None
        self.messages = 0
        self.stats = stats or EngineStats()

    @property
    def connected(self) -> bool:
        """Whether the connection is up (channels can be followed)."""
        return self._connection is not None

    async def start(self) -> None:
        """Connect (raises `Unavailable` if Redis cannot be reached) and keep the connection up until `close`;
        does nothing if started already."""
        if self._supervisor is not None:
            return
        self._first_connection = asyncio.get_running_loop().create_future()
        self._supervisor = asyncio.create_task(self._supervise(), name="tidings-redis-pubsub")
        try:
            await self._first_connection
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Stop reconnecting and close the connection; idempotent."""
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor

    async def subscribe(self, channel: bytes) -> None:
        """Subscribe ``channel`` and return once Redis confirmed it (from then on, every message is delivered)."""
        self._wanted.add(channel)
        if channel in self._confirmed:
            return
        confirming = self._confirming.get(channel)
        if confirming is None:
            connection = self._connection
            if connection is None:
                raise Unavailable("Redis is unreachable")
            confirming = self._confirming[channel] = asyncio.get_running_loop().create_future()
            await self._send(connection, self._subscribe_command, channel)
        try:
            async with asyncio.timeout(self._timeout):
                await asyncio.shield(confirming)
        except TimeoutError:
            raise Unavailable("Redis did not confirm a channel subscription in time") from None

    def unsubscribe(self, channel: bytes) -> None:
        """Stop receiving ``channel`` (no need to wait: late messages find no topic and are dropped)."""
        self._wanted.discard(channel)
        self._confirmed.discard(channel)
        connection = self._connection
        if connection is not None and connection._writer is not None:
            connection._writer.writelines(connection.pack_command(self._unsubscribe_command, channel))

    async def _send(self, connection: AbstractConnection, *args: bytes) -> None:
        try:
            await connection.send_packed_command(connection.pack_command(*args), check_health=False)
        except (OSError, RedisError) as error:
            raise Unavailable("the connection to Redis was lost") from error

    async def _supervise(self) -> None:
        first = True
        while True:
            connection = self._make_connection()
            try:
                async with asyncio.timeout(self._timeout):
                    await connection.connect()  # type: ignore[no-untyped-call]
            except (OSError, RedisError, TimeoutError) as error:
                if first and self._first_connection is not None:
                    self._first_connection.set_exception(Unavailable(f"cannot connect to Redis: {error}"))
                    return
                await asyncio.sleep(self._retry_interval)
                continue
            try:
                await self._serve(connection, first)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if self._connection is not None:
                    logger.warning("Redis pub/sub connection lost (%s); reconnecting", error)
            finally:
                self._down()
                with contextlib.suppress(Exception):
                    await connection.disconnect()
            if first and self._first_connection is not None and not self._first_connection.done():
                self._first_connection.set_exception(Unavailable("the connection to Redis failed at once"))
                return
            first = False
            self.stats.reconnects += 1
            await asyncio.sleep(self._retry_interval)

    async def _serve(self, connection: AbstractConnection, first: bool) -> None:
        """Resubscribe what is wanted, then read until the connection breaks."""
        self._connection = connection
        wanted = sorted(self._wanted)
        for channel in wanted:
            self._confirming.setdefault(channel, asyncio.get_running_loop().create_future())
        for start in range(0, len(wanted), _BATCH):
            await self._send(connection, self._subscribe_command, *wanted[start : start + _BATCH])
        async with asyncio.TaskGroup() as tasks:
            reader = tasks.create_task(self._read(connection))
            if wanted:
                async with asyncio.timeout(self._timeout + len(wanted) / 10_000):
                    await asyncio.gather(*(asyncio.shield(self._confirming[c]) for c in wanted))
            if self._on_state is not None:
                self._on_state(True)
            if first and self._first_connection is not None:
                self._first_connection.set_result(None)
            elif not first:
                logger.info("Redis pub/sub reconnected; %d channels resubscribed", len(wanted))
                self._resubscribed()
            await self._probe(connection)
            reader.cancel()

    async def _probe(self, connection: AbstractConnection) -> None:
        """Return (so that the connection is replaced) when a PING sent after a quiet interval goes unanswered."""
        while True:
            self._heard.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._probe_interval):
                    await self._heard.wait()
                continue
            await self._send(connection, b"PING")
            try:
                async with asyncio.timeout(self._timeout):
                    await self._heard.wait()
            except TimeoutError:
                logger.warning("Redis pub/sub connection did not answer a PING in %g s", self._timeout)
                return

    async def _read(self, connection: AbstractConnection) -> None:
        deliver = self._deliver
        message_kind = self._message_kind
        heard = self._heard
        while True:
            reply = await connection.read_response(disable_decoding=True)
            heard.set()
            if not isinstance(reply, list) or len(reply) < 2:
                continue
            kind = reply[0]
            if kind == message_kind:
                self.messages += 1
                deliver(reply[1], reply[2])
            elif kind == self._confirm_kind:
                channel = reply[1]
                if channel in self._wanted:
                    self._confirmed.add(channel)
                confirming = self._confirming.pop(channel, None)
                if confirming is not None and not confirming.done():
                    confirming.set_result(None)

    def _down(self) -> None:
        was_up = self._connection is not None
        self._connection = None
        self._confirmed.clear()
        confirming, self._confirming = self._confirming, {}
        for future in confirming.values():
            if not future.done():
                future.set_exception(Unavailable("the connection to Redis was lost"))
                future.exception()  # retrieved: a subscriber may have stopped waiting
        if was_up and self._on_state is not None:
            self._on_state(False)
