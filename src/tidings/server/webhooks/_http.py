"""The outbound side of webhooks: signed events POSTed over kept-alive HTTP/1.1 connections per receiver, never
following redirects, reading at most a few KiB of any answer, with a total deadline per attempt.

Our own small client on asyncio (`ReceiverConnection`, `ResponseParser`) rather than a general one: a webhook
sends one kind of request, whose head is built once per URL, and waits for each answer; a general client's
per-request machinery (pool bookkeeping, request and response objects, cookies) cost about ten times the rest
of a delivery (docs/performance.md, *Webhooks*).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Final
from urllib.parse import quote, urlsplit

from tidings.server.webhooks._addresses import PrivateAddress, public_addresses
from tidings.server.webhooks._connection import (
    Deadlines,
    IdleConnections,
    Origin,
    ReceiverClosed,
    ReceiverConnection,
)
from tidings.server.webhooks._response import MalformedResponse
from tidings.server.webhooks._retry import Outcome, Verdict, outcome_of_status
from tidings.webhooks import SIGNATURE_HEADER

# Connections to all endpoints together (requests in flight; as many idle ones are kept).
MAX_CONNECTIONS: Final = 512
# Kept while URLs are in use; a server with more distinct URLs than this rebuilds request heads now and then.
_MAX_TARGETS: Final = 4096
# Characters left as they are in a URL's path and query (httpx's choice); others are percent-encoded.
_URL_SAFE: Final = "!$&'()*+,;=:@/?%-._~"
TIMEOUT: Final = Outcome(Verdict.RETRY, "timeout")
CONNECTION: Final = Outcome(Verdict.RETRY, "connection")
PROTOCOL: Final = Outcome(Verdict.RETRY, "protocol")


def user_agent() -> str:
    """``tidings-webhooks/<version>``."""
    try:
        return f"tidings-webhooks/{version('tidings')}"
    except PackageNotFoundError:  # pragma: no cover - running from a tree that was never installed
        return "tidings-webhooks/0"


@dataclass(frozen=True, slots=True)
class Target:
    """One URL: the receiver to connect to, and the request head up to the signature's value."""

    origin: Origin
    head: bytes


def target_of(url: str, agent: str) -> Target:
    """The receiver and request head of ``url`` (an http(s) URL with a host, as `validate_url` ensures)."""
    parts = urlsplit(url)
    scheme, host = parts.scheme, parts.hostname or ""
    port = parts.port or (443 if scheme == "https" else 80)
    ascii_host = host.encode("idna").decode("ascii")
    authority = f"[{ascii_host}]" if ":" in ascii_host else ascii_host
    if parts.port is not None:
        authority += f":{parts.port}"
    target = quote(parts.path or "/", safe=_URL_SAFE) + (
        "?" + quote(parts.query, safe=_URL_SAFE) if parts.query else ""
    )
    head = (
        f"POST {target} HTTP/1.1\r\nhost: {authority}\r\nuser-agent: {agent}\r\n"
        f"content-type: application/json\r\n{SIGNATURE_HEADER}: "
    )
    return Target((scheme, ascii_host, port), head.encode("ascii"))


class WebhookSender:
    """POSTs events over kept-alive connections per receiver; an attempt's whole exchange (connecting, sending,
    the answer) ends within ``timeout``.

    With ``allow_private`` false, a connection goes only to addresses `public_addresses` checked when it was
    opened. ``ssl_context`` verifies https receivers (default: the system's trusted roots).
    """

    def __init__(
        self,
        *,
        timeout: float = 5.0,
        allow_private: bool = False,
        max_connections: int = MAX_CONNECTIONS,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.timeout = timeout
        self.allow_private = allow_private
        self._ssl_context = ssl_context or ssl.create_default_context()
        self._agent = user_agent()
        self._targets: dict[str, Target] = {}
        self._idle = IdleConnections(max_connections)
        self._slots = asyncio.Semaphore(max_connections)
        self._deadlines = Deadlines(tick=min(0.1, timeout / 10))
        self._closed = False
        # Per receiver that failed, resolved by its next delivered POST: webhooks backing off from it retry then.
        self._back: dict[Origin, asyncio.Future[None]] = {}

    async def post(self, url: str, body: bytes, signature: str) -> Outcome:
        """One attempt; never raises for what the endpoint or the network does."""
        if self._closed:
            raise RuntimeError("the webhook sender is closed")
        target = self._targets.get(url)
        if target is None:
            try:
                target = self._target(url)
            except (ValueError, UnicodeError):  # a host IDNA cannot encode
                return Outcome(Verdict.GIVE_UP, "protocol")
        request = b"%b%b\r\ncontent-length: %d\r\n\r\n%b" % (target.head, signature.encode(), len(body), body)
        deadline = asyncio.get_running_loop().time() + self.timeout
        try:
            if self._slots.locked():  # every connection is busy: wait for one, within the deadline
                async with asyncio.timeout_at(deadline):
                    await self._slots.acquire()
            else:
                await self._slots.acquire()
            try:
                status = await self._exchange(target.origin, request, deadline)
            finally:
                self._slots.release()
        except TimeoutError:
            return TIMEOUT
        except PrivateAddress:
            return Outcome(Verdict.GIVE_UP, "private_address")
        except MalformedResponse:
            return PROTOCOL
        except OSError:  # ReceiverClosed, refused, reset, unreachable, TLS failures
            return CONNECTION
        outcome = outcome_of_status(status)
        if self._back and outcome.verdict is Verdict.DELIVERED:
            back = self._back.pop(target.origin, None)
            if back is not None and not back.done():
                back.set_result(None)
        return outcome

    async def back_off(
        self, url: str, seconds: float, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    ) -> None:
        """Wait ``seconds`` before trying ``url`` again, or less: until a POST to the same receiver (scheme, host,
        port) is delivered. A receiver that is back then gets every webhook's backlog at once, not each at the
        end of its own backoff (which grows to a minute); while it still fails, each waits its backoff."""
        try:
            target = self._targets.get(url) or self._target(url)
        except (ValueError, UnicodeError):  # a URL no POST can go to: its backoff only
            await sleep(seconds)
            return
        back = self._back.get(target.origin)
        if back is None or back.done():
            back = self._back[target.origin] = asyncio.get_running_loop().create_future()
        waiting = asyncio.ensure_future(sleep(seconds))
        try:
            await asyncio.wait((back, waiting), return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiting.cancel()

    def _target(self, url: str) -> Target:
        if len(self._targets) >= _MAX_TARGETS:
            self._targets.clear()
        target = self._targets[url] = target_of(url, self._agent)
        return target

    async def _exchange(self, origin: Origin, request: bytes, deadline: float) -> int:
        connection = self._idle.take(origin)
        if connection is not None:
            try:
                return await self._send(origin, connection, request, deadline)
            except ReceiverClosed as closed:
                if not closed.before_answer:
                    raise
                # The receiver closed this idle connection as we reused it: once more, on a fresh one.
        async with asyncio.timeout_at(deadline):
            connection = await self._connect(origin)
        return await self._send(origin, connection, request, deadline)

    async def _send(self, origin: Origin, connection: ReceiverConnection, request: bytes, deadline: float) -> int:
        self._deadlines.watch(connection, deadline)
        try:
            status, reusable = await connection.exchange(request)
        except BaseException:  # a failure, the deadline or a cancellation: the connection is mid-request
            connection.abort()
            raise
        finally:
            self._deadlines.done(connection)
        if reusable and not self._closed:
            self._idle.put(origin, connection)
        else:
            connection.close()
        return status

    async def _connect(self, origin: Origin) -> ReceiverConnection:
        scheme, host, port = origin
        addresses = [host] if self.allow_private else await public_addresses(host, port)
        context = self._ssl_context if scheme == "https" else None
        loop = asyncio.get_running_loop()
        failure: OSError | None = None
        for address in addresses:  # a name's addresses in turn, as create_connection would try them
            try:
                _, connection = await loop.create_connection(
                    ReceiverConnection, address, port, ssl=context, server_hostname=host if context else None
                )
            except OSError as error:
                failure = error
            else:
                return connection
        raise failure or OSError(f"{host} has no address")

    async def close(self) -> None:
        """Close every kept-alive connection; the sender takes no more requests."""
        self._closed = True
        self._deadlines.close()
        for connection in self._idle.drain():
            connection.close()
