"""`GrpcTransport`: grpc.aio and tidings' own HTTP/2 transport behind one small interface, so that the composition
root starts, drains and stops either the same way (`tidings.server.grpc.server.build_transport` picks one)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import grpc
import grpc.aio

from tidings.server.grpc._h2 import H2Server, tls_context
from tidings.server.process import host_port, refuse_busy_port


class GrpcTransport(Protocol):
    """What the composition root asks of the gRPC transport, whichever it is."""

    @property
    def description(self) -> str:
        """A line for the log saying what serves gRPC, and how."""
        ...

    async def start(self, host: str, port: int) -> int:
        """Bind ``host:port`` (0: a free port) and serve; returns the bound port. `OSError` naming the address (or
        the TLS files) if it cannot."""
        ...

    def begin_stop(self, grace: float) -> None:
        """Refuse new calls from now on; open ones go on for up to ``grace`` seconds (a drain), then end."""
        ...

    async def stop(self, grace: float) -> None:
        """Stop as `begin_stop` does (unless begun already) and wait until stopped."""
        ...

    def tell_http_port(self, port: int) -> None:
        """The HTTP API is on ``port``: said to HTTP/1.1 requests that reach the gRPC port by mistake."""
        ...


def tls_key_pair(cert: Path, key: Path) -> tuple[bytes, bytes]:
    """(key, certificate chain) PEM bytes, checked to be a matching pair so that a bad file is named."""
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as error:
        raise OSError(f"cannot use --tls-cert {cert} with --tls-key {key}: {error}") from None
    return key.read_bytes(), cert.read_bytes()


class _Stopping:
    """Stopping, once, for both transports: a drain begins it, the shutdown waits for it."""

    def __init__(self) -> None:
        self._stopping: asyncio.Task[None] | None = None

    async def _stop(self, grace: float) -> None:
        raise NotImplementedError

    def begin_stop(self, grace: float) -> None:
        if self._stopping is None:
            self._stopping = asyncio.create_task(self._stop(grace))

    async def stop(self, grace: float) -> None:
        self.begin_stop(grace)
        assert self._stopping is not None
        await self._stopping


class GrpcioTransport(_Stopping):
    """grpc.aio (grpc-core): ``build`` makes the server (services registered) when it starts."""

    def __init__(
        self,
        build: Callable[[], grpc.aio.Server],
        *,
        reuse_port: bool,
        tls: tuple[Path, Path] | None,
        max_pending_calls: int,
    ) -> None:
        super().__init__()
        self._build = build
        self._reuse_port = reuse_port
        self._tls = tls
        self._server: grpc.aio.Server | None = None
        self.description = (
            f"gRPC: up to {max_pending_calls} calls may wait to be taken during a burst (--max-pending-calls)"
        )

    async def start(self, host: str, port: int) -> int:
        server = self._server = self._build()
        address = host_port(host, port)
        refuse_busy_port(host, port, reuse_port=self._reuse_port)
        try:
            if self._tls is not None:
                bound = server.add_secure_port(address, grpc.ssl_server_credentials([tls_key_pair(*self._tls)]))
            else:
                bound = server.add_insecure_port(address)
        except RuntimeError as error:
            raise OSError(f"cannot listen on {address}: {error}") from None
        if bound == 0:
            raise OSError(f"cannot listen on {address}")
        await server.start()
        return bound

    async def _stop(self, grace: float) -> None:
        if self._server is not None:
            await self._server.stop(grace)

    def tell_http_port(self, port: int) -> None:
        """Nothing to tell: grpc-core answers HTTP/1.1 requests itself."""


class H2Transport(_Stopping):
    """tidings' own HTTP/2 transport (``--grpc-transport h2``): ``build`` makes the server for a TLS context (None:
    plain TCP) when it starts."""

    description = "gRPC served by tidings' own HTTP/2 transport (--grpc-transport h2)"

    def __init__(
        self, build: Callable[[ssl.SSLContext | None], H2Server], *, reuse_port: bool, tls: tuple[Path, Path] | None
    ) -> None:
        super().__init__()
        self._build = build
        self._reuse_port = reuse_port
        self._tls = tls
        self._server: H2Server | None = None

    async def start(self, host: str, port: int) -> int:
        refuse_busy_port(host, port, reuse_port=self._reuse_port)
        ssl_context = None
        if self._tls is not None:
            tls_key_pair(*self._tls)  # names a bad file
            ssl_context = tls_context(*self._tls)
        server = self._server = self._build(ssl_context)
        try:
            return await server.start(host, port)
        except OSError as error:
            raise OSError(f"cannot listen on {host_port(host, port)}: {error}") from None

    async def _stop(self, grace: float) -> None:
        if self._server is not None:
            await self._server.stop(grace)

    def tell_http_port(self, port: int) -> None:
        if self._server is not None:
            self._server.http_port = port
