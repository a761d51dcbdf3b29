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

The names below come from ``tidings.client`` on first use: ``import tidings`` alone stays cheap, which
matters because pytest imports this package at start-up for its plugin (``tidings.testing``), before
coverage measurement begins.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tidings.client import (
        ALL_CACHES,
        ALL_TOPICS,
        DEFAULT_ENDPOINT,
        DEFAULT_TIMEOUT,
        AuthClient,
        AuthClientAsync,
        CacheClient,
        CacheClientAsync,
        CacheInfo,
        ConnectionOptions,
        CreateCache,
        DeleteCache,
        DeleteWebhook,
        DisposableTokenScope,
        ErrorCode,
        ErrorResponse,
        GenerateDisposableToken,
        GetWebhookSecret,
        ListCaches,
        ListWebhooks,
        PutWebhook,
        RotateWebhookSecret,
        SubscriptionItem,
        SubscriptionStatistics,
        TopicClient,
        TopicClientAsync,
        TopicItem,
        TopicLimits,
        TopicNamePrefix,
        TopicPublish,
        TopicRole,
        TopicScope,
        TopicSubscribe,
        TopicSubscriptionItem,
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

if not TYPE_CHECKING:  # type checkers see the imports above, and no catch-all attribute

    def __getattr__(name: str) -> object:
        if name not in __all__:
            raise AttributeError(f"module 'tidings' has no attribute {name!r}")
        import tidings.client

        value = getattr(tidings.client, name)
        globals()[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *__all__})
