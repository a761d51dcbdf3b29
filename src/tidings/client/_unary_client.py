"""`UnaryClientAsync`: what the asyncio clients of request-response services share.

Connection settings, a channel opened on first use (so a client can be built outside the event loop that
uses it), ``close`` and the async context manager, and `UnaryClientAsync._call` for one unary call.
`CacheClientAsync` and `AuthClientAsync` are this plus their methods.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from types import TracebackType
from typing import Self, TypeVar

import grpc.aio
from google.protobuf.message import Message

from tidings.client._connection import DEFAULT_ENDPOINT, DEFAULT_TIMEOUT, ConnectionSettings, arguments_from_env

Response = TypeVar("Response", bound=Message)


class UnaryClientAsync:
    """The base of the asyncio clients: connection settings, the channel (opened on first use), unary calls,
    closing and the context-manager protocol."""

    def __init__(
        self,
        endpoint: str = DEFAULT_ENDPOINT,
        api_key: str | None = None,
        *,
        tls: bool = False,
        root_certificates: bytes | None = None,
        timeout: float | timedelta = DEFAULT_TIMEOUT,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self._settings = ConnectionSettings.of(endpoint, api_key, tls, root_certificates, timeout, headers)
        self._channel: grpc.aio.Channel | None = None
        self._closed = False

    @classmethod
    def from_env(cls, **overrides: object) -> Self:
        """A client for ``TIDINGS_ENDPOINT`` (default ``localhost:8080``) with ``TIDINGS_API_KEY``;
        keyword arguments override them."""
        return cls(**arguments_from_env(overrides))

    @property
    def endpoint(self) -> str:
        """The ``host:port`` the client connects to."""
        return self._settings.target

    async def close(self) -> None:
        """Close the connection. Idempotent; using the client afterwards raises RuntimeError."""
        self._closed = True
        channel, self._channel = self._channel, None
        if channel is not None:
            await channel.close(grace=None)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"{type(self).__name__}(endpoint={self._settings.target!r}, state={state!r})"

    async def _call(self, method: str, request: Message, response_type: type[Response]) -> Response:
        """Call ``method`` (``/package.Service/Method``) with the client's key and timeout; raises
        ``grpc.aio.AioRpcError`` for the caller to turn into its Error response."""
        if self._closed:
            raise RuntimeError("the client is closed")
        if self._channel is None:
            self._channel = self._settings.open_channel()
        call = self._channel.unary_unary(
            method,
            request_serializer=type(request).SerializeToString,
            response_deserializer=response_type.FromString,
            _registered_method=True,  # type: ignore[call-arg]  # missing from grpc-stubs
        )
        return await call(request, timeout=self._settings.timeout, metadata=self._settings.metadata)  # type: ignore[no-any-return]
