"""`CacheClientAsync`: create, delete and list caches over ``control_client.ScsControl`` with grpc.aio."""

from __future__ import annotations

from typing import Final

import grpc
import grpc.aio
from momento_wire_types import controlclient_pb2 as pb

from tidings.client._errors import error_from, invalid_argument
from tidings.client._responses import CacheInfo, CreateCache, DeleteCache, ListCaches, TopicLimits
from tidings.client._unary_client import UnaryClientAsync
from tidings.client._validation import name_problem

_SERVICE: Final = "/control_client.ScsControl/"


class CacheClientAsync(UnaryClientAsync):
    """Manages caches, the namespaces topics live in (asyncio).

    Takes the same connection arguments as `TopicClientAsync`; cache management needs a super-user API key
    (or anonymous access, which a server on loopback allows by default). Use it as an async context manager,
    or call `close`.
    """

    async def create_cache(
        self, cache_name: str
    ) -> CreateCache.Success | CreateCache.CacheAlreadyExists | CreateCache.Error:
        """Create a cache; answers ``CacheAlreadyExists`` if there is one with that name."""
        problem = name_problem("cache_name", cache_name)
        if problem is not None:
            return invalid_argument(CreateCache.Error, problem)
        try:
            await self._call(
                _SERVICE + "CreateCache", pb._CreateCacheRequest(cache_name=cache_name), pb._CreateCacheResponse
            )
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
            await self._call(
                _SERVICE + "DeleteCache", pb._DeleteCacheRequest(cache_name=cache_name), pb._DeleteCacheResponse
            )
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
                    _SERVICE + "ListCaches", pb._ListCachesRequest(next_token=next_token), pb._ListCachesResponse
                )
                caches.extend(_cache_info(cache) for cache in response.cache)
                next_token = response.next_token
                if not next_token:
                    break
        except grpc.aio.AioRpcError as error:
            return error_from(ListCaches.Error, error)
        return ListCaches.Success(tuple(sorted(caches, key=lambda cache: cache.name)))


def _cache_info(cache: pb._Cache) -> CacheInfo:
    limits = cache.topic_limits if cache.HasField("topic_limits") else None
    return CacheInfo(
        cache.cache_name,
        None
        if limits is None
        else TopicLimits(limits.max_publish_rate, limits.max_subscription_count, limits.max_publish_message_size_kb),
    )
