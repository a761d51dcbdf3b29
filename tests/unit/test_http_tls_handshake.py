"""The HTTP listener's own TLS handshake (`TlsHandshake`) when the ClientHello is already waiting.

A client sends its ClientHello right after connecting. uvloop starts reading a new connection after
`connection_made`, so the hello reaches the protocol before the handshake task has begun; it must go to the TLS
protocol, not be taken for application data (the handshake then waited for its deadline: a flaky HTTPS test
under load). Blocking the loop while the client connects makes that order certain.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
import types
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
import uvloop

from tests.integration._tls import self_signed_certificate
from tidings.server.http._connections import ConnectionLimits, guarded_protocol


class _Echo(asyncio.Protocol):
    """Stands in for the HTTP protocol the handshake hands the connection to."""

    def __init__(self, **_: Any) -> None:
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(b"echo:" + data)

    def take_address(self, address: str | None) -> None:
        """The connection's count by address is the HTTP protocol's to release; nothing to do here."""


Run = Callable[[Coroutine[Any, Any, list[bytes]]], list[bytes]]


def _tls_client(port: int, cafile: Path, hello_sent: threading.Event, answers: list[bytes]) -> None:
    """Connect, send the ClientHello, say so, then finish the handshake, send ``ping`` and read the answer (TLS
    over memory buffers, so that the moment the hello is on the wire is known)."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ssl.create_default_context(cafile=str(cafile)).wrap_bio(incoming, outgoing, server_hostname="localhost")

    def step(operation: Callable[[], Any]) -> Any:
        while True:
            try:
                result = operation()
            except ssl.SSLWantReadError:
                sock.sendall(outgoing.read())
                hello_sent.set()
                data = sock.recv(65536)
                if not data:
                    raise ConnectionError("the server closed the connection") from None
                incoming.write(data)
            else:
                sock.sendall(outgoing.read())
                return result

    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        step(tls.do_handshake)
        step(lambda: tls.write(b"ping"))
        answers.append(step(lambda: tls.read(100)))


@pytest.mark.parametrize("run", [uvloop.run, asyncio.run], ids=["uvloop", "asyncio"])
def test_a_client_hello_that_arrives_before_the_handshake_begins_is_used(run: Run, tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    limits = ConnectionLimits(max_connections=10, idle_timeout=5, request_timeout=5)
    protocol: Any = guarded_protocol(limits, server_context)
    protocol.http = _Echo

    async def exchange() -> list[bytes]:
        loop = asyncio.get_running_loop()
        state = types.SimpleNamespace(connections=set())
        server = await loop.create_server(lambda: protocol(None, state, {}, loop), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        answers: list[bytes] = []
        hello_sent = threading.Event()
        thread = threading.Thread(target=_tls_client, args=(port, cert, hello_sent, answers))
        thread.start()
        # The loop stays blocked until the ClientHello is on the wire: when it wakes, the new connection and
        # its hello are both waiting.
        assert hello_sent.wait(10)
        await asyncio.to_thread(thread.join)
        server.close()
        return answers

    started = time.monotonic()
    answers = run(exchange())

    assert answers == [b"echo:ping"]
    assert time.monotonic() - started < limits.request_timeout  # answered, not after the handshake deadline
    assert not limits.handshaking
