"""The outbound side of webhooks: one pooled httpx client POSTing signed events, never following redirects,
reading at most a few KiB of any answer, with a total deadline per attempt."""

from __future__ import annotations

import asyncio
import importlib.util
import ipaddress
import socket
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Final
from urllib.parse import urlsplit

import httpx

# httpcore asks ``import sniffio`` on every pool operation and falls back to asyncio when it is missing (anyio 4
# no longer installs it). A failed import is not cached: each one searched sys.path again, ~15% of the server's
# CPU per delivery (measured). A None entry makes the miss immediate; the outcome (asyncio) is the same.
if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
    sys.modules["sniffio"] = None  # type: ignore[assignment]

from tidings.server.webhooks._retry import Outcome, Verdict, outcome_of_status
from tidings.webhooks import SIGNATURE_HEADER

# Receivers answer "ok"; anything longer is read no further (the connection is then dropped, not reused).
MAX_RESPONSE_BYTES: Final = 4096
# Connections to all endpoints together; each webhook has at most one request in flight.
MAX_CONNECTIONS: Final = 512


def user_agent() -> str:
    """``tidings-webhooks/<version>``."""
    try:
        return f"tidings-webhooks/{version('tidings')}"
    except PackageNotFoundError:  # pragma: no cover - running from a tree that was never installed
        return "tidings-webhooks/0"


class PrivateAddress(Exception):
    """The URL's host is (or resolves to) an address that is not globally routable."""


async def check_public(url: str) -> None:
    """Raise `PrivateAddress` unless every address of ``url``'s host is global (not loopback, private,
    link-local, shared, reserved or multicast): a webhook must not reach into the server's own network."""
    host = urlsplit(url).hostname or ""
    try:
        addresses = {ipaddress.ip_address(host)}
    except ValueError:
        port = urlsplit(url).port or 443
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = {ipaddress.ip_address(info[4][0]) for info in infos}
    for address in addresses:
        mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
        if not (mapped or address).is_global:
            raise PrivateAddress(f"{host} is {address}, not a public address")


class WebhookSender:
    """POSTs events with one shared connection pool; an attempt's whole exchange ends within ``timeout``."""

    def __init__(self, *, timeout: float = 5.0, allow_private: bool = False, max_connections: int = MAX_CONNECTIONS):
        self.timeout = timeout
        self.allow_private = allow_private
        self._client = httpx.AsyncClient(
            follow_redirects=False,
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            headers={"user-agent": user_agent(), "content-type": "application/json"},
            trust_env=False,  # no proxies from the environment: the server's endpoints are the operator's choice
        )

    async def post(self, url: str, body: bytes, signature: str) -> Outcome:
        """One attempt; never raises for what the endpoint or the network does."""
        try:
            async with asyncio.timeout(self.timeout):
                if not self.allow_private:
                    await check_public(url)
                async with self._client.stream(
                    "POST", url, content=body, headers={SIGNATURE_HEADER: signature}
                ) as response:
                    read = 0
                    async for chunk in response.aiter_raw():
                        read += len(chunk)
                        if read >= MAX_RESPONSE_BYTES:
                            break
                    return outcome_of_status(response.status_code)
        except TimeoutError:
            return Outcome(Verdict.RETRY, "timeout")
        except PrivateAddress:
            return Outcome(Verdict.GIVE_UP, "private_address")
        except httpx.TimeoutException:
            return Outcome(Verdict.RETRY, "timeout")
        except (httpx.TransportError, OSError):
            return Outcome(Verdict.RETRY, "connection")
        except httpx.HTTPError:
            return Outcome(Verdict.RETRY, "protocol")

    async def close(self) -> None:
        """Close every pooled connection."""
        await self._client.aclose()
