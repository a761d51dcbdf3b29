"""A PUBSUB connection to one Redis node: channel subscriptions confirmed, messages handed to local fan-out.

The reader never awaits a subscriber: it hands each channel message to ``deliver`` (the topic's mirror), which
appends it and wakes that topic's subscriptions. A supervisor reconnects a broken connection, resubscribes every
wanted channel in batches and then calls ``resubscribed`` with them so that their topics backfill what they
missed; a PING sent when the connection was quiet for ``probe_interval`` must be answered within
``probe_timeout``, or the connection counts as broken (a connection can die silently).

With a Redis Cluster (``sharded``: SSUBSCRIBE), a channel can also leave this node while the connection lives:
after a failover or a slot migration Redis drops the channel itself (an unsolicited ``sunsubscribe``), and a
subscription sent to a node that no longer serves the slot is answered ``-MOVED``. Both are reported through
``on_lost`` (the owner reads the slot map again and moves the channels with `release` and `ensure`); the channel
stays wanted here until it is released.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection, Iterable

from redis.asyncio.connection import AbstractConnection
from redis.crc import key_slot
from redis.exceptions import MovedError, RedisError, ResponseError

from tidings.server.core import EngineStats, Unavailable
from tidings.server.redis_io._patience import responsive_wait

logger = logging.getLogger("tidings.server.redis")

_BATCH = 500  # channels per SUBSCRIBE when resubscribing


class ChannelSubscriber:
    """Subscribes channels on one connection and delivers their messages.

    ``sharded`` uses SSUBSCRIBE (Redis Cluster's sharded pub/sub) instead of SUBSCRIBE; one SSUBSCRIBE names
    channels of one slot only.
    """

    def __init__(
        self,
        connect: Callable[[], AbstractConnection],
        deliver: Callable[[bytes, bytes], None],
        resubscribed: Callable[[list[bytes]], None],
        *,
        sharded: bool = False,
        timeout: float = 2.0,
        probe_interval: float = 1.0,
        retry_interval: float = 0.5,
        on_state: Callable[[bool], None] | None = None,
        on_lost: Callable[[], None] | None = None,
        stats: EngineStats | None = None,
    ) -> None:
        self._make_connection = connect
        self._deliver = deliver
        self._resubscribed = resubscribed
        self._sharded = sharded
        self._subscribe_command = b"SSUBSCRIBE" if sharded else b"SUBSCRIBE"
        self._unsubscribe_command = b"SUNSUBSCRIBE" if sharded else b"UNSUBSCRIBE"
        self._message_kind = b"smessage" if sharded else b"message"
        self._confirm_kind = b"ssubscribe" if sharded else b"subscribe"
        self._unsubscribed_kind = b"sunsubscribe" if sharded else b"unsubscribe"
        self._timeout = timeout
        self._probe_interval = probe_interval
        self._retry_interval = retry_interval
        self._on_state = on_state
        self._on_lost = on_lost
        self._connection: AbstractConnection | None = None
        self._wanted: set[bytes] = set()
        self._confirmed: set[bytes] = set()
        self._confirming: dict[bytes, asyncio.Future[None]] = {}
        self._unsubscribing: set[bytes] = set()  # sent UNSUBSCRIBE, confirmation not seen yet
        self._heard = asyncio.Event()  # anything arrived since the last probe
        self._supervisor: asyncio.Task[None] | None = None
        self._first_connection: asyncio.Future[None] | None = None
        self.messages = 0
        self.stats = stats or EngineStats()

    @property
    def connected(self) -> bool:
        """Whether the connection is up (channels can be followed)."""
        return self._connection is not None

    @property
    def wanted(self) -> frozenset[bytes]:
        """Every channel this connection should be subscribed to."""
        return frozenset(self._wanted)

    @property
    def settled(self) -> bool:
        """Whether the connection is up and Redis confirmed every wanted channel."""
        return self._connection is not None and self._confirmed >= self._wanted

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

    def launch(self) -> None:
        """Like `start` without waiting: connect in the background, retrying until `close` (a node that took
        over channels: its wanted channels are subscribed, then reported through ``resubscribed``)."""
        if self._supervisor is None:
            self._supervisor = asyncio.create_task(self._supervise(), name="tidings-redis-pubsub")

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
            await self._send(connection, [(self._subscribe_command, channel)])
        try:
            await responsive_wait(asyncio.shield(confirming), self._timeout)
        except TimeoutError:
            raise Unavailable("Redis did not confirm a channel subscription in time") from None

    def unsubscribe(self, channel: bytes) -> None:
        """Stop receiving ``channel`` (no need to wait: late messages find no topic and are dropped)."""
        self._wanted.discard(channel)
        self._confirmed.discard(channel)
        connection = self._connection
        if connection is not None and connection._writer is not None:
            self._unsubscribing.add(channel)
            connection._writer.writelines(connection.pack_command(self._unsubscribe_command, channel))

    def release(self, channels: Iterable[bytes]) -> None:
        """Forget ``channels`` without telling Redis (they moved to another node, which no longer holds them or
        is gone); a subscribe waiting for one of them fails with `Unavailable`."""
        for channel in channels:
            self._wanted.discard(channel)
            self._confirmed.discard(channel)
            self._fail(channel)

    def adopt(self, channels: Iterable[bytes]) -> None:
        """Want ``channels`` (moved here from another node); `ensure`, or the next connection, subscribes them."""
        self._wanted.update(channels)

    async def ensure(self) -> None:
        """Subscribe every wanted channel that is neither confirmed nor being confirmed, wait for Redis to
        confirm them and report those through ``resubscribed``; raises `Unavailable` when not connected."""
        connection = self._connection
        if connection is None:
            raise Unavailable("Redis is unreachable")
        missing = sorted(self._wanted - self._confirmed - self._confirming.keys())
        if not missing:
            return
        await self._subscribe_all(connection, missing)
        confirmed = await self._confirmations(missing)
        if confirmed:
            self._resubscribed(confirmed)

    async def _send(self, connection: AbstractConnection, commands: list[tuple[bytes, ...]]) -> None:
        try:
            await connection.send_packed_command(connection.pack_commands(commands), check_health=False)
        except (OSError, RedisError) as error:
            raise Unavailable("the connection to Redis was lost") from error

    async def _subscribe_all(self, connection: AbstractConnection, channels: Collection[bytes]) -> None:
        """Send the subscriptions of ``channels`` in batches (per slot when sharded), all in one write."""
        loop = asyncio.get_running_loop()
        for channel in channels:
            self._confirming.setdefault(channel, loop.create_future())
        groups: dict[int, list[bytes]] = {}
        for channel in channels:
            groups.setdefault(key_slot(channel) if self._sharded else 0, []).append(channel)
        commands = [
            (self._subscribe_command, *group[start : start + _BATCH])
            for group in groups.values()
            for start in range(0, len(group), _BATCH)
        ]
        if commands:
            await self._send(connection, commands)

    async def _confirmations(self, channels: list[bytes]) -> list[bytes]:
        """Wait (bounded) until Redis confirmed or refused each of ``channels``; the confirmed ones, still wanted.

        Raises `Unavailable` when the confirmations do not arrive in time.
        """
        waits = [asyncio.shield(self._confirming[c]) for c in channels if c in self._confirming]
        try:
            await responsive_wait(
                asyncio.gather(*waits, return_exceptions=True), self._timeout + len(channels) / 10_000
            )
        except TimeoutError:
            raise Unavailable("Redis did not confirm the channel subscriptions in time") from None
        return [c for c in channels if c in self._confirmed]

    async def _supervise(self) -> None:
        first = True
        while True:
            connection = self._make_connection()
            try:
                await responsive_wait(connection.connect(), self._timeout)  # type: ignore[no-untyped-call]
            except (OSError, RedisError, TimeoutError) as error:
                if first and self._first_connection is not None:
                    self._first_connection.set_exception(Unavailable(f"cannot connect to Redis: {error}"))
                    return
                if self._on_lost is not None:
                    self._on_lost()
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
            if self._on_lost is not None:
                self._on_lost()
            await asyncio.sleep(self._retry_interval)

    async def _serve(self, connection: AbstractConnection, first: bool) -> None:
        """Resubscribe what is wanted, then read until the connection breaks."""
        self._connection = connection
        wanted = sorted(self._wanted)
        await self._subscribe_all(connection, wanted)
        async with asyncio.TaskGroup() as tasks:
            reader = tasks.create_task(self._read(connection))
            confirmed = await self._confirmations(wanted)
            if self._on_state is not None:
                self._on_state(True)
            if first and self._first_connection is not None:
                self._first_connection.set_result(None)
            if wanted:
                logger.info("Redis pub/sub reconnected; %d channels resubscribed", len(confirmed))
                self._resubscribed(confirmed)
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
            await self._send(connection, [(b"PING",)])
            try:
                await responsive_wait(self._heard.wait(), self._timeout)
            except TimeoutError:
                logger.warning("Redis pub/sub connection did not answer a PING in %g s", self._timeout)
                return

    async def _read(self, connection: AbstractConnection) -> None:
        deliver = self._deliver
        message_kind = self._message_kind
        heard = self._heard
        while True:
            try:
                reply = await connection.read_response(disable_decoding=True)
            except ResponseError as error:  # an error reply (a refused subscription); the connection goes on
                heard.set()
                self._refused(error)
                continue
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
            elif kind == self._unsubscribed_kind:
                channel = reply[1]
                if channel in self._unsubscribing:
                    self._unsubscribing.discard(channel)
                elif channel in self._confirmed:
                    # Redis dropped the channel: its slot moved (a failover, a migration). It stays wanted.
                    self._confirmed.discard(channel)
                    if self._on_lost is not None:
                        self._on_lost()

    def _refused(self, error: ResponseError) -> None:
        """A subscription was refused: with ``-MOVED`` those of its slot, otherwise every unconfirmed one."""
        logger.info("Redis refused a channel subscription: %s", error)
        slot = error.slot_id if isinstance(error, MovedError) else None
        for channel in list(self._confirming):
            if slot is None or key_slot(channel) == slot:
                self._fail(channel)
        if self._on_lost is not None:
            self._on_lost()

    def _fail(self, channel: bytes) -> None:
        confirming = self._confirming.pop(channel, None)
        if confirming is not None and not confirming.done():
            confirming.set_exception(Unavailable("Redis did not accept the channel subscription here"))
            confirming.exception()  # retrieved: nobody may be waiting

    def _down(self) -> None:
        was_up = self._connection is not None
        self._connection = None
        self._confirmed.clear()
        self._unsubscribing.clear()
        confirming, self._confirming = self._confirming, {}
        for future in confirming.values():
            if not future.done():
                future.set_exception(Unavailable("the connection to Redis was lost"))
                future.exception()  # retrieved: a subscriber may have stopped waiting
        if was_up and self._on_state is not None:
            self._on_state(False)
