"""tidings: a self-hosted, Momento-wire-compatible Topics (publish/subscribe) service, SDK and CLI.

The SDK::

    from tidings import TopicClient, TopicPublish, TopicSubscriptionItem

    with TopicClient("localhost:8080") as client:
        subscription = client.subscribe("cache", "topic")
        client.publish("cache", "topic", "hello")
        for item in subscription:
            match item:
                case TopicSubscriptionItem.Text(value=value, sequence_number=number):
                    print(number, value)
"""

from tidings.client import (
    DEFAULT_ENDPOINT,
    DEFAULT_TIMEOUT,
    CacheClient,
    CacheClientAsync,
    CacheInfo,
    CreateCache,
    DeleteCache,
    ErrorCode,
    ErrorResponse,
    ListCaches,
    SubscriptionItem,
    SubscriptionStatistics,
    TopicClient,
    TopicClientAsync,
    TopicItem,
    TopicLimits,
    TopicPublish,
    TopicSubscribe,
    TopicSubscriptionItem,
)

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
