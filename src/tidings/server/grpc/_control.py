"""``control_client.ScsControl`` (cache management) and ``cache_client.Ping``.

Only CreateCache, DeleteCache and ListCaches are registered; grpcio answers UNIMPLEMENTED for the rest of
the service's methods.
"""

from __future__ import annotations

from typing import Any, Final

import grpc
import grpc.aio
from momento_wire_types import controlclient_pb2 as pb

from tidings.server.auth import Authenticator
from tidings.server.core import TopicsService
from tidings.server.grpc._auth import credential_of
from tidings.server.grpc._context import CallContext
from tidings.server.grpc._status import guarded, parse_request

SERVICE: Final = "control_client.ScsControl"
PING_SERVICE: Final = "cache_client.Ping"


class ControlServicer:
    """Links cache management to the topics service."""

    def __init__(self, service: TopicsService, authenticator: Authenticator) -> None:
        self._service = service
        self._authenticate = authenticator.authenticate
        self.stats = service.stats_for("grpc")

    @guarded
    async def create_cache(self, data: bytes, context: CallContext) -> bytes:
        """Create a cache; ALREADY_EXISTS if it exists."""
        principal = self._authenticate(credential_of(context))
        await self._service.create_cache(parse_request(pb._CreateCacheRequest, data).cache_name, principal)
        return b""

    @guarded
    async def delete_cache(self, data: bytes, context: CallContext) -> bytes:
        """Delete a cache; its subscriptions end with NOT_FOUND."""
        principal = self._authenticate(credential_of(context))
        await self._service.delete_cache(parse_request(pb._DeleteCacheRequest, data).cache_name, principal)
        return b""

    @guarded
    async def list_caches(self, data: bytes, context: CallContext) -> bytes:
        """All caches with the topic limits that apply to them, in one page."""
        principal = self._authenticate(credential_of(context))
        limits = self._service.limits
        topic_limits = pb._TopicLimits(
            max_publish_rate=int(limits.publish_rate_per_cache or 0),
            max_subscription_count=limits.max_subscriptions_per_cache,
            max_publish_message_size_kb=max(1, limits.max_message_bytes // 1024),
        )
        names = await self._service.list_caches(principal)
        return pb._ListCachesResponse(
            cache=[pb._Cache(cache_name=name, topic_limits=topic_limits) for name in names]
        ).SerializeToString()

    def handlers(self) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
        """The method handlers to register under `SERVICE`."""
        return {
            "CreateCache": grpc.unary_unary_rpc_method_handler(self.create_cache),
            "DeleteCache": grpc.unary_unary_rpc_method_handler(self.delete_cache),
            "ListCaches": grpc.unary_unary_rpc_method_handler(self.list_caches),
        }


async def _ping(data: bytes, context: CallContext) -> bytes:
    return b""  # _PingResponse is empty


def ping_handlers() -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
    """``cache_client.Ping/Ping``: answers an empty response (its messages are empty)."""
    return {"Ping": grpc.unary_unary_rpc_method_handler(_ping)}
