"""The tidings SDK: topic, cache and auth clients (asyncio and blocking), their response objects and token scopes.

Everything here is re-exported by ``tidings``; import it from there.
"""

from tidings.client._auth_client import AuthClientAsync
from tidings.client._cache_client import CacheClientAsync
from tidings.client._connection import DEFAULT_ENDPOINT, DEFAULT_TIMEOUT, ConnectionOptions
from tidings.client._errors import ErrorCode, ErrorResponse
from tidings.client._items import SubscriptionItem, TopicItem, TopicSubscriptionItem
from tidings.client._responses import (
    CacheInfo,
    CreateCache,
    DeleteCache,
    GenerateDisposableToken,
    ListCaches,
    TopicLimits,
    TopicPublish,
    TopicSubscribe,
)
from tidings.client._scopes import ALL_CACHES, ALL_TOPICS, DisposableTokenScope, TopicNamePrefix, TopicRole, TopicScope
from tidings.client._subscription import SubscriptionStatistics
from tidings.client._sync import AuthClient, CacheClient, TopicClient
from tidings.client._topic_client import TopicClientAsync
from tidings.client._webhook_responses import (
    DeleteWebhook,
    GetWebhookSecret,
    ListWebhooks,
    PutWebhook,
    RotateWebhookSecret,
    WebhookInfo,
)

__all__ = [
    "ALL_CACHES",
    "ALL_TOPICS",
    "DEFAULT_ENDPOINT",
    "DEFAULT_TIMEOUT",
    "AuthClient",
    "AuthClientAsync",
    "CacheClient",
    "CacheClientAsync",
    "CacheInfo",
    "ConnectionOptions",
    "CreateCache",
    "DeleteCache",
    "DeleteWebhook",
    "DisposableTokenScope",
    "ErrorCode",
    "ErrorResponse",
    "GenerateDisposableToken",
    "GetWebhookSecret",
    "ListCaches",
    "ListWebhooks",
    "PutWebhook",
    "RotateWebhookSecret",
    "SubscriptionItem",
    "SubscriptionStatistics",
    "TopicClient",
    "TopicClientAsync",
    "TopicItem",
    "TopicLimits",
    "TopicNamePrefix",
    "TopicPublish",
    "TopicRole",
    "TopicScope",
    "TopicSubscribe",
    "TopicSubscriptionItem",
    "WebhookInfo",
]
