"""Where a key or channel lives: one Redis, or the masters of a Redis Cluster, followed through failovers.

With one Redis every key goes over one pipelined link and every channel over one pub/sub connection. With a
cluster, the slot of a key (or channel: a topic's keys and channel share one hash tag, so one slot) picks the master
that owns it, from the slot map (``CLUSTER SLOTS``); each master gets its own link and its own sharded pub/sub
connection (SSUBSCRIBE), so a topic's fan-out traffic stays on the shard that owns it.

The slot map is read again (`refresh`) whenever something says it may be stale:

- a ``-MOVED`` reply (resharding, a failover the node learnt of): the map is read at once and the command sent
  again, once; an ``-ASK`` reply (a slot being migrated) sends the command to the named node after ``ASKING``;
- a lost node: a connect refused, a connection broken or silent, a pub/sub connection down, or channels that
  Redis dropped (it does when their slot leaves a node). A dead master never answers ``-MOVED``, so a repair task
  reads the map from every known node (masters and replicas), with backoff, until every slot's master answers.

Applying a new map moves commands at once (each call looks its slot up), and moves the pub/sub side: the channels
of slots that changed owner are reported through ``moved``, subscribed on the new owner and reported through
``resubscribed``, so that their topics backfill from their streams what they missed meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable
from typing import Final
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.crc import key_slot
from redis.exceptions import AskError, MovedError, ResponseError

from tidings.server.core import EngineStats, OutcomeUnknown, Unavailable
from tidings.server.redis_io._link import Arg, RedisLink, Reply, as_list, pack_command
from tidings.server.redis_io._pubsub import ChannelSubscriber
from tidings.server.redis_io._slots import SLOTS, agree, parse_slot_map

logger = logging.getLogger("tidings.server.redis")

# The repair task's pauses between slot map reads while a slot has no reachable master (doubling from the first).
REPAIR_BACKOFF: Final = (0.05, 0.5)
# How long a slot map read waits for more nodes once one answered (a frozen node must not hold it up).
_MORE_ANSWERS: Final = 0.25


def connection_factory(url: str, timeout: float = 2.0) -> Callable[[], AbstractConnection]:
    """Makes new, unconnected redis-py connections to ``url`` (``redis://``, ``rediss://``, ``unix://``).

    RESP2 (pub/sub replies are plain arrays), and no read timeout: the readers wait for replies and pushes as
    long as the connection lives; hung connections are found by the link's watchdog and the pub/sub probe.
    """
    pool = ConnectionPool.from_url(url, protocol=2, socket_timeout=None, socket_connect_timeout=timeout)
    return pool.make_connection


class Shards:
    """The links and pub/sub connections of one Redis (``cluster`` False) or of a cluster's masters."""

    def __init__(
        self,
        url: str,
        *,
        cluster: bool = False,
        timeout: float = 2.0,
        stats: EngineStats | None = None,
    ) -> None:
        self._url = url
        self.stats = stats or EngineStats()
        self.cluster = cluster
        self._timeout = timeout
        self._deliver: Callable[[bytes, bytes], None] | None = None
        self._resubscribed: Callable[[list[bytes]], None] | None = None
        self._moved: Callable[[list[bytes]], None] | None = None
        self._links: dict[str, RedisLink] = {}
        self._subscribers: dict[str, ChannelSubscriber] = {}
        self._slot_owner: list[str] = []  # slot -> node address (cluster)
        self._masters: set[str] = set()  # the addresses in the slot map
        self._nodes: list[str] = [url]  # every node known (cluster): where the slot map can be read
        self._refreshing: asyncio.Task[None] | None = None
        self._trouble = asyncio.Event()  # a node may be lost: the repair task reads the slot map
        self._repair: asyncio.Task[None] | None = None
        self._retiring: set[asyncio.Task[None]] = set()  # pub/sub connections of nodes that serve no slot, closing
        self._closed = False

    def listen(
        self,
        deliver: Callable[[bytes, bytes], None],
        resubscribed: Callable[[list[bytes]], None],
        moved: Callable[[list[bytes]], None],
    ) -> None:
        """Open pub/sub connections too, handing their messages to ``deliver`` and reporting channels through
        ``resubscribed`` and ``moved`` (the engine's, whose owner made these connections); before `start`."""
        self._deliver, self._resubscribed, self._moved = deliver, resubscribed, moved

    @property
    def connected(self) -> bool:
        """Whether every pub/sub connection is up (the engine serves subscribers only then)."""
        return bool(self._subscribers) and all(s.connected for s in self._subscribers.values())

    @property
    def links(self) -> list[RedisLink]:
        """Every command link (for metrics)."""
        return list(self._links.values())

    @property
    def subscribers(self) -> list[ChannelSubscriber]:
        """Every pub/sub connection (for metrics)."""
        return list(self._subscribers.values())

    def owner_of(self, slot: int) -> str:
        """The address of the node serving ``slot`` (as this process last read the slot map)."""
        return self._slot_owner[slot]

    async def start(self) -> None:
        """Connect (discover the cluster's masters first); raises `Unavailable` if Redis cannot be reached."""
        if self.cluster:
            await self.refresh()
        else:
            self._slot_owner = [self._url] * SLOTS
            self._masters = {self._url}
        for address in sorted(set(self._slot_owner)):
            await self._link(address).call(b"PING")
            if self._deliver is not None:
                await self._subscriber(address).start()
        if self.cluster:
            self._repair = asyncio.create_task(self._repair_forever(), name="tidings-redis-slot-map")

    async def close(self) -> None:
        """Close every connection."""
        self._closed = True
        for task in (self._repair, self._refreshing):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        for subscriber in self._subscribers.values():
            await subscriber.close()
        for retiring in list(self._retiring):
            await retiring
        for link in self._links.values():
            await link.close()

    def subscribed(self, slot: int) -> bool:
        """Whether the pub/sub connection for channels in ``slot`` is up."""
        subscriber = self._subscribers.get(self._slot_owner[slot])
        return subscriber is not None and subscriber.connected

    async def subscribe(self, channel: bytes) -> None:
        """Subscribe ``channel`` on the node serving its slot; returns once Redis confirmed it.

        Raises `Unavailable` when that node cannot be reached. When the node refused it (the slot moved), the slot
        map is read again and the subscription sent to the new owner, once.
        """
        slot = key_slot(channel)
        owner = self._slot_owner[slot]
        try:
            await self._subscriber(owner).subscribe(channel)
            return
        except Unavailable:
            if not self.cluster:
                raise
        with contextlib.suppress(Unavailable):
            await self.refresh()
        if self._slot_owner[slot] == owner:
            raise Unavailable("Redis is unreachable")
        await self._subscriber(self._slot_owner[slot]).subscribe(channel)

    def unsubscribe(self, channel: bytes) -> None:
        """Stop receiving ``channel``, wherever it is subscribed."""
        for subscriber in self._subscribers.values():
            if channel in subscriber.wanted:
                subscriber.unsubscribe(channel)

    async def call(self, key: bytes, *args: Arg) -> object:
        """Send a command to the node holding ``key``, following redirections (`send_at`)."""
        return await self.call_at(key_slot(key), *args)

    async def call_at(self, slot: int, *args: Arg) -> object:
        """Send a command to the node owning ``slot``, following redirections (`send_at`)."""
        return await self.send_at(slot, pack_command(args))

    async def send_at(self, slot: int, command: bytes) -> object:
        """`call_at` with the command already in RESP.

        A ``-MOVED`` reading the slot map again and sending the command to the new owner, once; an ``-ASK`` is
        followed to the node it names. A node that cannot be reached makes the repair task look for its
        successor; the call is then sent to the slot's new owner if the map already names one, else it fails with
        `Unavailable` (``OutcomeUnknown`` if the command was written: it is never sent twice).
        """
        owner = self._slot_owner[slot]
        try:
            return await self._link(owner).send(command)
        except AskError as redirect:
            if not self.cluster:
                raise
            if not isinstance(redirect, MovedError):
                return await self._redirected(redirect, command, asking=True)
        except OutcomeUnknown:
            raise
        except Unavailable:
            if not self.cluster or self._slot_owner[slot] == owner:
                raise
            return await self._link(self._slot_owner[slot]).send(command)  # the repair found the new owner
        logger.info("Redis Cluster slot %d moved; reading the slot map again", slot)
        with contextlib.suppress(Unavailable):
            await self.refresh()
        try:
            return await self._link(self._slot_owner[slot]).send(command)
        except MovedError as redirect:  # the nodes do not agree yet: go where this one says
            return await self._redirected(redirect, command, asking=False)

    async def _redirected(self, redirect: AskError, command: bytes, *, asking: bool) -> Reply:
        target = _with_host(self._url, redirect.host, int(redirect.port))
        return await self._link(target).send(command, asking=asking)

    def _link(self, address: str) -> RedisLink:
        link = self._links.get(address)
        if link is None:
            link = self._links[address] = RedisLink(
                connection_factory(address, self._timeout),
                timeout=self._timeout,
                name=f"redis {_display(address)}",  # the URL may hold a password: never in the log
                stats=self.stats,
                on_lost=functools.partial(self._lost, address),
            )
        return link

    def _subscriber(self, address: str) -> ChannelSubscriber:
        subscriber = self._subscribers.get(address)
        if subscriber is None:
            assert self._deliver is not None
            assert self._resubscribed is not None
            subscriber = self._subscribers[address] = ChannelSubscriber(
                connection_factory(address, self._timeout),
                self._deliver,
                self._resubscribed,
                sharded=self.cluster,
                timeout=self._timeout,
                on_lost=functools.partial(self._lost, address),
                stats=self.stats,
            )
        return subscriber

    def _lost(self, address: str) -> None:
        """A connection to ``address`` failed: if it serves slots, let the repair task look for its successor
        (cluster only; a node that serves none, asked for the slot map, may well be gone)."""
        if self.cluster and not self._closed and address in self._masters:
            self._trouble.set()

    async def _repair_forever(self) -> None:
        """Whenever a node may be lost, read the slot map (backing off) until every slot's master answers and
        every pub/sub connection is subscribed to its channels."""
        first_pause, longest_pause = REPAIR_BACKOFF
        while True:
            await self._trouble.wait()
            pause = first_pause
            while True:
                self._trouble.clear()
                try:
                    await self.refresh()
                    if await self._settled():
                        break
                except Unavailable as error:
                    logger.debug("Redis Cluster not settled yet: %s", error.message)
                except ResponseError as error:  # a node loading its data, a cluster still voting...
                    logger.debug("Redis Cluster not settled yet: %s", error)
                except Exception:  # this task must outlive any surprise, or failovers would go unnoticed
                    logger.exception("unexpected fault while following the Redis Cluster slot map")
                await asyncio.sleep(pause)
                pause = min(pause * 2, longest_pause)

    async def _settled(self) -> bool:
        """Whether every master in the map answers a PING and every pub/sub connection holds its channels
        (subscribing those that are not, which reports them through ``resubscribed``)."""
        owners = sorted(set(self._slot_owner))
        await asyncio.gather(*(self._link(address).call(b"PING") for address in owners))
        subscribers = [self._subscribers[a] for a in owners if a in self._subscribers]
        await asyncio.gather(*(s.ensure() for s in subscribers))
        return all(s.settled for s in subscribers)

    async def refresh(self) -> None:
        """Read the slot map and apply it; one read at a time (callers meanwhile share it).

        Raises `Unavailable` when no node answers, or the nodes that answer leave a slot without a master.
        """
        refreshing = self._refreshing
        if refreshing is None:
            refreshing = self._refreshing = asyncio.create_task(
                self._read_slot_map(), name="tidings-redis-slot-map-read"
            )
            refreshing.add_done_callback(self._refreshed)
        await asyncio.shield(refreshing)

    def _refreshed(self, refreshing: asyncio.Task[None]) -> None:
        if self._refreshing is refreshing:
            self._refreshing = None
        if not refreshing.cancelled():
            refreshing.exception()  # retrieved: the callers that waited for it have seen it

    async def _read_slot_map(self) -> None:
        """Ask every known node for ``CLUSTER SLOTS`` (waiting for more answers briefly once one came) and apply
        what most of them state (`_slots.agree`)."""
        self.stats.slot_map_refreshes += 1
        asking = {
            address: asyncio.ensure_future(self._link(address).call(b"CLUSTER", b"SLOTS")) for address in self._nodes
        }
        try:
            pending: set[asyncio.Future[Reply]] = set(asking.values())
            async with asyncio.timeout(self._timeout):
                while pending and not any(f.done() and f.exception() is None for f in asking.values()):
                    _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if pending:
                await asyncio.wait(pending, timeout=_MORE_ANSWERS)
        except TimeoutError:
            pass
        finally:
            for future in asking.values():
                future.cancel()
        maps = []
        for address, future in asking.items():
            if not future.done() or future.cancelled():
                continue
            error = future.exception()
            if error is not None:
                if not isinstance(error, Unavailable | ResponseError):
                    raise error
                continue
            found, nodes = parse_slot_map(as_list(future.result()), functools.partial(self._address, address))
            maps.append(found)
            self._nodes.extend(node for node in nodes if node not in self._nodes)
        if not maps:
            raise Unavailable("no Redis Cluster node answered")
        owners = agree(maps)
        if "" in owners:
            raise Unavailable("the Redis Cluster does not cover every slot")
        self._apply(owners)

    def _address(self, asked: str, host: str, port: int) -> str:
        """The address of node ``host:port`` named by node ``asked`` (an empty host: ``asked``'s own host)."""
        return _with_host(self._url, host or urlsplit(asked).hostname or "", port)

    def _apply(self, owners: list[str]) -> None:
        """Make ``owners`` the slot map: move the channels of slots that changed owner to their new owner's pub/sub
        connection, and close those of nodes that serve no slot any more."""
        previous, self._slot_owner = self._slot_owner, owners
        if previous == owners:
            return
        self._masters = set(owners)
        masters_before, masters_now = set(previous), set(owners)
        # A failover: a master serves nothing any more, and a node that was not a master took its slots over.
        successors = {
            previous[slot]: owners[slot] for slot in range(SLOTS) if previous and owners[slot] != previous[slot]
        }
        self.stats.failovers += sum(
            1 for old, new in successors.items() if old not in masters_now and new not in masters_before
        )
        if not previous or self._deliver is None:
            return  # the first map (`start` connects), or no pub/sub side (the store)
        logger.warning(
            "Redis Cluster slot map changed: masters %s", ", ".join(sorted(_display(a) for a in masters_now))
        )
        moving: dict[str, list[bytes]] = {}
        for address, subscriber in self._subscribers.items():
            leaving = [c for c in subscriber.wanted if owners[key_slot(c)] != address]
            if leaving:
                subscriber.release(leaving)
                for channel in leaving:
                    moving.setdefault(owners[key_slot(channel)], []).append(channel)
        for address, channels in moving.items():
            subscriber = self._subscriber(address)
            subscriber.adopt(channels)
            subscriber.launch()
            if self._moved is not None:
                self._moved(channels)
        for address in masters_now:
            if self._subscribers.get(address) is None:
                self._subscriber(address).launch()
        for address in [a for a in self._subscribers if a not in masters_now]:
            retiring = asyncio.get_running_loop().create_task(
                self._subscribers.pop(address).close(), name="tidings-redis-pubsub-close"
            )
            self._retiring.add(retiring)
            retiring.add_done_callback(self._retiring.discard)
        self._trouble.set()  # subscribe the moved channels, and check the new masters answer


def _with_host(url: str, host: str, port: int) -> str:
    """``url`` (its scheme, credentials, options) pointing at ``host:port``."""
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = (credentials + "@" if credentials else "") + (f"[{host}]" if ":" in host else host) + f":{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _display(address: str) -> str:
    """``host:port`` of a node address, without credentials (for logs)."""
    parts = urlsplit(address)
    return f"{parts.hostname}:{parts.port}"
