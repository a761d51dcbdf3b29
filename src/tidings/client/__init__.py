"""The tidings SDK: topic and cache clients (asyncio and blocking) and their response objects.

Everything here is re-exported by ``tidings``; import it from there.
"""

from tidings.client._cache_client import CacheClientAsync
from tidings.client._connection import DEFAULT_ENDPOINT, DEFAULT_TIMEOUT
from tidings.client._errors import ErrorCode, ErrorResponse
from tidings.client._items import SubscriptionItem, TopicItem, TopicSubscriptionItem
from tidings.client._responses import (
    CacheInfo,
    CreateCache,
    DeleteCache,
    ListCaches,
    TopicLimits,
    TopicPublish,
    TopicSubscribe,
)
from tidings.client._subscription import SubscriptionStatistics
from tidings.client._sync import CacheClient, TopicClient
from tidings.client._topic_client import TopicClientAsync

__all__ = [
    "DEFAULT_ENDPOINT",
    "DEFAULT_TIMEOUT",
    "CacheClient",
    "CacheClientAsync",
    "CacheInfo",
    "CreateCache",
    "DeleteCache",
    "ErrorCode",
    "ErrorResponse",
    "ListCaches",
    "SubscriptionItem",
    "SubscriptionStatistics",
    "TopicClient",
    "TopicClientAsync",
    "TopicItem",
    "TopicLimits",
    "TopicPublish",
    "TopicSubscribe",
    "TopicSubscriptionItem",
]
