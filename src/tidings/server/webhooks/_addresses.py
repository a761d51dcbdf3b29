"""Where a webhook may connect: every address of its host must be public unless the operator allows private ones.

The check resolves the host when a connection is opened, and the connection goes to an address it checked (a
DNS answer that changes in between cannot aim it elsewhere); a kept-alive connection needs no new check.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit


class PrivateAddress(Exception):
    """The URL's host is (or resolves to) an address that is not globally routable."""


def _is_global(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return (mapped or address).is_global


async def public_addresses(host: str, port: int) -> list[str]:
    """The addresses of ``host`` (in the resolver's order), once every one is global (not loopback, private,
    link-local, shared, reserved or multicast); `PrivateAddress` otherwise: a webhook must not reach into the
    server's own network."""
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    else:
        addresses = [str(literal)]
    for address in addresses:
        if not _is_global(ipaddress.ip_address(address)):
            raise PrivateAddress(f"{host} is {address}, not a public address")
    return addresses


async def check_public(url: str) -> None:
    """Raise `PrivateAddress` unless every address of ``url``'s host is global (`public_addresses`)."""
    parts = urlsplit(url)
    await public_addresses(parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80))
