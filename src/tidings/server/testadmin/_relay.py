"""`DataPortRelay`: the gRPC port as clients reach it with ``--test-admin-port``, a TCP relay that can go silent.

Momento Local's ``GET /block`` cuts its data port off at the network: open connections stop carrying anything
either way, keepalive pings and their answers included, so an SDK finds its connection dead by its own
keepalive deadline (the Node SDK pings every 5 s and gives up 1 s later), and new connections get no answer.
tidings does the same below both gRPC transports at once: the transport listens on a loopback port of its own,
and this relay listens where clients connect, copying bytes both ways. Blocked, it reads nothing from either
side (what is sent waits in the kernel's socket buffers, as behind a firewall that drops packets), and it
accepts new connections without connecting them through; unblocked, everything flows again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import cast

logger = logging.getLogger("tidings.server.testadmin")


class _Side(asyncio.Protocol):
    """One socket of a relayed connection: what it reads goes to its peer, while the relay lets it."""

    def __init__(self, relay: DataPortRelay) -> None:
        self._relay = relay
        self.transport: asyncio.Transport | None = None
        self.peer: _Side | None = None
        self._peer_writable = True
        # What was read while the relay does not let it through: sent on when it does, never dropped. uvloop starts
        # reading after `connection_made` whatever it asked, so the first read may come before the pause: one read.
        self._held: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not its subclasses
        self._relay.sides.add(self)
        self.refresh()

    def data_received(self, data: bytes) -> None:
        peer = self._open_peer()
        if peer is None:
            self._held.append(data)
            self.refresh()
            return
        if self._held:
            self._release(peer)
        peer.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._relay.sides.discard(self)
        if self.peer is not None:
            self.peer.close()

    # The peer's socket buffer is full: stop reading what it could not take.
    def pause_writing(self) -> None:
        if self.peer is not None:
            self.peer.set_peer_writable(False)

    def resume_writing(self) -> None:
        if self.peer is not None:
            self.peer.set_peer_writable(True)

    def set_peer_writable(self, writable: bool) -> None:
        """Record whether the peer can take more bytes now, and read (or not) accordingly."""
        self._peer_writable = writable
        self.refresh()

    def refresh(self) -> None:
        """Read while the relay is not blocked and the peer is connected and can take what is read."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        peer = self._open_peer()
        if peer is None:
            if transport.is_reading():
                transport.pause_reading()
        else:
            if self._held:
                self._release(peer)
            if not transport.is_reading():
                transport.resume_reading()

    def _open_peer(self) -> asyncio.Transport | None:
        """The peer's transport when what this side reads may go to it now; None while it must wait."""
        peer = self.peer.transport if self.peer is not None else None
        return None if self._relay.blocked or not self._peer_writable else peer

    def _release(self, peer: asyncio.Transport) -> None:
        peer.write(b"".join(self._held))
        self._held.clear()

    def close(self) -> None:
        """Close this socket once what is queued for it is written."""
        if self.transport is not None:
            self.transport.close()


class _ClientSide(_Side):
    """A connection a client opened to the data port; connected through to the transport unless blocked."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if not self._relay.blocked:
            self._relay.connect_through(self)


class DataPortRelay:
    """Listens where clients connect and relays each connection to ``upstream`` (the transport's own port);
    `block` silences every connection, open and new, until `unblock`."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)  # where connections go (settable until the first one)
        self.blocked = False
        self.sides: set[_Side] = set()  # every open socket, client and upstream
        self._connecting: dict[_ClientSide, asyncio.Task[None]] = {}
        self._listener: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (0: a free port) and return the bound port; OSError if it cannot."""
        loop = asyncio.get_running_loop()
        self._listener = await loop.create_server(
            lambda: _ClientSide(self), host.strip("[]") or None, port, backlog=4096
        )
        return int(self._listener.sockets[0].getsockname()[1])

    def block(self) -> None:
        """Stop relaying: open connections carry nothing either way, new ones are not connected through."""
        self.blocked = True
        for side in list(self.sides):
            side.refresh()

    def unblock(self) -> None:
        """Relay again: open connections carry what waited, connections accepted while blocked go through."""
        self.blocked = False
        for side in list(self.sides):
            if isinstance(side, _ClientSide) and side.peer is None:
                self.connect_through(side)
            side.refresh()

    def connect_through(self, client: _ClientSide) -> None:
        """Open ``client``'s connection to the transport (once)."""
        if client in self._connecting:
            return
        task = asyncio.get_running_loop().create_task(self._connect(client))
        self._connecting[client] = task
        task.add_done_callback(lambda _: self._connecting.pop(client, None))

    async def _connect(self, client: _ClientSide) -> None:
        upstream = _Side(self)
        try:
            await asyncio.get_running_loop().create_connection(lambda: upstream, *self.upstream)
        except OSError as error:
            logger.warning("test-admin relay: cannot reach the gRPC transport: %s", error)
            client.close()
            return
        if client.transport is None:  # the client left meanwhile
            upstream.close()
            return
        client.peer, upstream.peer = upstream, client
        client.refresh()
        upstream.refresh()

    async def close(self) -> None:
        """Stop listening and close every relayed connection."""
        if self._listener is not None:
            self._listener.close()
        tasks = list(self._connecting.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for side in list(self.sides):
            side.close()
