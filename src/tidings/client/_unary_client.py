"""`UnaryClientAsync`: what the asyncio clients of request-response services share.

Connection settings, a channel opened on first use (so a client can be built outside the event loop that
uses it), ``close`` and the async context manager, and `UnaryClientAsync._call` for one unary call.
`CacheClientAsync` and `AuthClientAsync` are this plus their methods.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self, TypeVar, Unpack

import grpc.aio
from google.protobuf.message import Message

from tidings.client._connection import DEFAULT_ENDPOINT, ConnectionKeywords, ConnectionOptions, ConnectionSettings

Response = TypeVar("Response", bound=Message)


class UnaryClientAsync:
    """The base of the asyncio clients: connection options, the channel (opened on first use), unary calls,
    closing and the context-manager protocol.

    Every client takes a `ConnectionOptions`, or its fields as arguments: ``endpoint``, ``api_key`` and the
    keywords ``tls``, ``root_certificates``, ``timeout`` and ``headers``. Given options, ``api_key`` and the
    keywords override theirs.
    """

    def __init__(
        self,
        endpoint: str | ConnectionOptions = DEFAULT_ENDPOINT,
        api_key: str | None = None,
        **options: Unpack[ConnectionKeywords],
    ) -> None:
        self._options = ConnectionOptions.of(endpoint, api_key, options)
        self._settings = ConnectionSettings.of(self._options)
        self._channel: grpc.aio.Channel | None = None
        self._closed = False
        self._prepare()

    def _prepare(self) -> None:
        """Set up what a client adds to the connection (called at the end of ``__init__``)."""

    @classmethod
    def from_env(cls, **overrides: Any) -> Self:
        """A client for ``TIDINGS_ENDPOINT`` (default ``localhost:8080``) with ``TIDINGS_API_KEY``;
        keyword arguments override them."""
        return cls(ConnectionOptions.from_env(**overrides))

    @property
    def options(self) -> ConnectionOptions:
        """The connection options the client was made with (to make another client the same way)."""
        return self._options

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
