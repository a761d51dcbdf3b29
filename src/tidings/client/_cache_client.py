"""`CacheClientAsync`: create, delete and list caches over ``control_client.ScsControl`` with grpc.aio."""

from __future__ import annotations

from datetime import timedelta
from types import TracebackType
from typing import Final, TypeVar

import grpc
import grpc.aio
from google.protobuf.message import Message
from momento_wire_types import controlclient_pb2 as pb

from tidings.client._connection import DEFAULT_ENDPOINT, DEFAULT_TIMEOUT, ConnectionSettings, arguments_from_env
from tidings.client._errors import error_from, invalid_argument
from tidings.client._responses import CacheInfo, CreateCache, DeleteCache, ListCaches, TopicLimits
from tidings.client._validation import name_problem

_SERVICE: Final = "/control_client.ScsControl/"
Response = TypeVar("Response", bound=Message)


class CacheClientAsync:
    """Manages caches, the namespaces topics live in (asyncio).

    Takes the same connection arguments as `TopicClientAsync`; cache management needs a super-user API key
    (or anonymous access, which a server on loopback allows by default).
    """

    def __init__(
        self,
        endpoint: str = DEFAULT_ENDPOINT,
        api_key: str | None = None,
        *,
        tls: bool = False,
        root_certificates: bytes | None = None,
        timeout: float | timedelta = DEFAULT_TIMEOUT,
    ) -> None:
        self._settings = ConnectionSettings.of(endpoint, api_key, tls, root_certificates, timeout)
        self._channel: grpc.aio.Channel | None = None
        self._closed = False

    @classmethod
    def from_env(cls, **overrides: object) -> CacheClientAsync:
        """A client for ``TIDINGS_ENDPOINT`` (default ``localhost:8080``) with ``TIDINGS_API_KEY``;
        keyword arguments override them."""
        return cls(**arguments_from_env(overrides))

    @property
    def endpoint(self) -> str:
        """The ``host:port`` the client connects to."""
        return self._settings.target

    async def create_cache(
        self, cache_name: str
    ) -> CreateCache.Success | CreateCache.CacheAlreadyExists | CreateCache.Error:
        """Create a cache; answers ``CacheAlreadyExists`` if there is one with that name."""
        problem = name_problem("cache_name", cache_name)
        if problem is not None:
            return invalid_argument(CreateCache.Error, problem)
        try:
            await self._call("CreateCache", pb._CreateCacheRequest(cache_name=cache_name), pb._CreateCacheResponse)
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.ALREADY_EXISTS:
                return CreateCache.CacheAlreadyExists()
            return error_from(CreateCache.Error, error)
        return CreateCache.Success()

    async def delete_cache(self, cache_name: str) -> DeleteCache.Success | DeleteCache.Error:
        """Delete a cache; its topics' subscriptions end with ``CACHE_NOT_FOUND``."""
        problem = name_problem("cache_name", cache_name)
        if problem is not None:
            return invalid_argument(DeleteCache.Error, problem)
        try:
            await self._call("DeleteCache", pb._DeleteCacheRequest(cache_name=cache_name), pb._DeleteCacheResponse)
        except grpc.aio.AioRpcError as error:
            return error_from(DeleteCache.Error, error)
        return DeleteCache.Success()

    async def list_caches(self) -> ListCaches.Success | ListCaches.Error:
        """Every cache (all pages of the server's answer), sorted by name."""
        caches: list[CacheInfo] = []
        next_token = ""
        try:
            while True:
                response = await self._call(
                    "ListCaches", pb._ListCachesRequest(next_token=next_token), pb._ListCachesResponse
                )
                caches.extend(_cache_info(cache) for cache in response.cache)
                next_token = response.next_token
                if not next_token:
                    break
        except grpc.aio.AioRpcError as error:
            return error_from(ListCaches.Error, error)
        return ListCaches.Success(tuple(sorted(caches, key=lambda cache: cache.name)))

    async def close(self) -> None:
        """Close the connection. Idempotent; using the client afterwards raises RuntimeError."""
        self._closed = True
        channel, self._channel = self._channel, None
        if channel is not None:
            await channel.close(grace=None)

    async def __aenter__(self) -> CacheClientAsync:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"CacheClientAsync(endpoint={self._settings.target!r}, state={state!r})"

    async def _call(self, method: str, request: Message, response_type: type[Response]) -> Response:
        if self._closed:
            raise RuntimeError("the client is closed")
        if self._channel is None:
            self._channel = self._settings.open_channel()
        call = self._channel.unary_unary(
            _SERVICE + method,
            request_serializer=type(request).SerializeToString,
            response_deserializer=response_type.FromString,
            _registered_method=True,  # type: ignore[call-arg]  # missing from grpc-stubs
        )
        return await call(request, timeout=self._settings.timeout, metadata=self._settings.metadata)  # type: ignore[no-any-return]


def _cache_info(cache: pb._Cache) -> CacheInfo:
    limits = cache.topic_limits if cache.HasField("topic_limits") else None
    return CacheInfo(
        cache.cache_name,
        None
        if limits is None
        else TopicLimits(limits.max_publish_rate, limits.max_subscription_count, limits.max_publish_message_size_kb),
    )
