"""Listening addresses: how one is written in messages, and whether it can be bound before a transport tries."""

from __future__ import annotations

import socket


def host_port(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host in brackets (``[::1]:8080``)."""
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def refuse_busy_port(host: str, port: int, reuse_port: bool = False) -> None:
    """`OSError` naming the address if ``host:port`` cannot be bound (checked before grpcio tries, which would
    print a line of its own first and a less clear error). Workers sharing the port (``reuse_port``) skip it."""
    if port == 0 or reuse_port:
        return
    try:
        family, kind, protocol, _, address = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        with socket.socket(family, kind, protocol) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as error:
        raise OSError(f"cannot listen on {host_port(host, port)}: {error.strerror or error}") from None
