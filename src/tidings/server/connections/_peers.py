"""Open connections per client address, so that one address cannot take every connection a transport allows.

Each transport (gRPC, HTTP) keeps one `ConnectionsPerAddress`: a connection from an address that already holds
``limit`` open connections is refused, whatever the transport's total. The address is the peer's IP address as
the socket reports it (``127.0.0.1``, ``::1``): behind a proxy or NAT that hides its clients' addresses, every
client is one address, and the limit should be the transport's whole ``--max-connections``.
"""

from __future__ import annotations

from typing import Any


def peer_address(transport: Any) -> str:
    """The IP address of ``transport``'s peer (its ``peername``'s host); ``""`` when it has none (a Unix
    socket, or a connection already gone)."""
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else ""


class ConnectionsPerAddress:
    """Counts open connections by peer address and admits at most ``limit`` from each."""

    __slots__ = ("_open", "limit", "refused")

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("the connections allowed per address must be at least 1")
        self.limit = limit
        self.refused = 0  # connections refused for their address, since start
        self._open: dict[str, int] = {}

    def admit(self, address: str) -> bool:
        """Count a new connection from ``address``; False (not counted, to be refused) when it holds ``limit``."""
        count = self._open.get(address, 0)
        if count >= self.limit:
            self.refused += 1
            return False
        self._open[address] = count + 1
        return True

    def release(self, address: str) -> None:
        """A connection `admit` counted has closed."""
        count = self._open.get(address, 0) - 1
        if count > 0:
            self._open[address] = count
        else:
            self._open.pop(address, None)

    def open_from(self, address: str) -> int:
        """Open connections from ``address``."""
        return self._open.get(address, 0)

    def __len__(self) -> int:
        """Addresses with an open connection."""
        return len(self._open)
