"""Where a key or channel lives: one Redis, or the masters of a Redis Cluster.

With one Redis every key goes over one pipelined link and every channel over one pub/sub connection. With a
cluster, the slot of a key (or channel: a topic's keys and channel share one hash tag, so one slot) picks the master
that owns it, from ``CLUSTER SLOTS``; each master gets its own link and its own sharded pub/sub connection
(SSUBSCRIBE), so a topic's fan-out traffic stays on the shard that owns it. A ``MOVED`` reply (resharding, a
failover) refreshes the slot map and the command is sent again, once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.crc import key_slot
from redis.exceptions import MovedError, ResponseError

from tidings.server.core import EngineStats, Unavailable
from tidings.server.engine._redis_link import Arg, RedisLink, as_list, as_text, pack_command
from tidings.server.engine._redis_pubsub import ChannelSubscriber

logger = logging.getLogger("tidings.server.redis")

SLOTS: Final = 16384


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
        deliver: Callable[[bytes, bytes], None] | None = None,
        resubscribed: Callable[[], None] | None = None,
        stats: EngineStats | None = None,
    ) -> None:
        self._url = url
        self.stats = stats or EngineStats()
        self.cluster = cluster
        self._timeout = timeout
        self._deliver = deliver
        self._resubscribed = resubscribed
        self._links: dict[str, RedisLink] = {}
        self._subscribers: dict[str, ChannelSubscriber] = {}
        self._slot_owner: list[str] = []  # slot -> node address (cluster)

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

    async def start(self) -> None:
        """Connect (discover the cluster's masters first); raises `Unavailable` if Redis cannot be reached."""
        if self.cluster:
            await self._discover()
        else:
            self._slot_owner = [self._url] * SLOTS
        for address in sorted(set(self._slot_owner)):
            await self._link(address).call(b"PING")
            if self._deliver is not None:
                await self._subscriber(address).start()

    async def close(self) -> None:
        """Close every connection."""
        for subscriber in self._subscribers.values():
            await subscriber.close()
        for link in self._links.values():
            await link.close()

    def subscriber_at(self, slot: int) -> ChannelSubscriber:
        """The pub/sub connection for channels in ``slot`` (sharded: the node owning it)."""
        return self._subscriber(self._slot_owner[slot])

    async def call(self, key: bytes, *args: Arg) -> object:
        """Send a command to the node holding ``key``, following one ``MOVED`` redirection."""
        return await self.call_at(key_slot(key), *args)

    async def call_at(self, slot: int, *args: Arg) -> object:
        """Send a command to the node owning ``slot``, following one ``MOVED`` redirection."""
        return await self.send_at(slot, pack_command(args))

    async def send_at(self, slot: int, command: bytes) -> object:
        """`call_at` with the command already in RESP."""
        try:
            return await self._link(self._slot_owner[slot]).send(command)
        except MovedError:
            if not self.cluster:
                raise
        except ResponseError as error:
            if not (self.cluster and str(error).startswith("MOVED")):
                raise
        logger.info("Redis Cluster slots moved; reading the slot map again")
        await self._discover()
        return await self._link(self._slot_owner[slot]).send(command)

    def _link(self, address: str) -> RedisLink:
        link = self._links.get(address)
        if link is None:
            link = self._links[address] = RedisLink(
                connection_factory(address, self._timeout),
                timeout=self._timeout,
                name=f"redis {address}",
                stats=self.stats,
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
                stats=self.stats,
            )
        return subscriber

    async def _discover(self) -> None:
        """Read the slot map from any known node (the seed URL first)."""
        candidates = [self._url, *sorted(self._links)]
        for address in candidates:
            try:
                reply = as_list(await self._link(address).call(b"CLUSTER", b"SLOTS"))
            except (Unavailable, ResponseError) as error:
                logger.warning("cannot read the Redis Cluster slots from %s: %s", address, error)
                continue
            owners = [""] * SLOTS
            for entry in reply:
                first, last, master = as_list(entry)[:3]
                host, port = as_list(master)[:2]
                node = _with_host(self._url, as_text(host) or urlsplit(address).hostname or "", int(as_text(port)))
                for slot in range(int(as_text(first)), int(as_text(last)) + 1):
                    owners[slot] = node
            if "" in owners:
                raise Unavailable("the Redis Cluster does not cover every slot")
            self._slot_owner = owners
            for node in set(owners):
                if self._deliver is not None and node not in self._subscribers:
                    await self._subscriber(node).start()
            return
        raise Unavailable("no Redis Cluster node answered")


def _with_host(url: str, host: str, port: int) -> str:
    """``url`` (its scheme, credentials, options) pointing at ``host:port``."""
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = (credentials + "@" if credentials else "") + (f"[{host}]" if ":" in host else host) + f":{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
