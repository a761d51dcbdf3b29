"""`TopicClient`, `CacheClient`, `AuthClient`: the blocking clients, each running its async twin on a loop thread.

Every method hands the async client's coroutine to the loop thread and waits for it, so the logic lives once,
in the async clients. Clients are thread-safe: any number of threads may publish and subscribe at once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import timedelta
from types import TracebackType
from typing import Any, ClassVar, Generic, Self, TypeVar, Unpack

from tidings.client._auth_client import AuthClientAsync
from tidings.client._cache_client import CacheClientAsync
from tidings.client._callbacks import Callback, Callbacks
from tidings.client._connection import DEFAULT_ENDPOINT, ConnectionKeywords, ConnectionOptions
from tidings.client._loop import LoopThread
from tidings.client._responses import (
    CreateCache,
    DeleteCache,
    GenerateDisposableToken,
    ListCaches,
    TopicPublish,
    TopicSubscribe,
)
from tidings.client._scopes import TopicScope
from tidings.client._subscription_sync import Subscription
from tidings.client._topic_client import TopicClientAsync
from tidings.client._unary_client import UnaryClientAsync
from tidings.client._webhook_responses import (
    DeleteWebhook,
    GetWebhookSecret,
    ListWebhooks,
    PutWebhook,
    RotateWebhookSecret,
)

AsyncClient = TypeVar("AsyncClient", bound=UnaryClientAsync)


class _BlockingClient(Generic[AsyncClient]):
    """A blocking client: its async twin run on a loop thread it owns (started here, stopped by `close`).

    It takes the same arguments as its twin: a `ConnectionOptions`, or its fields.
    """

    _thread_name: ClassVar[str]

    def __init__(
        self,
        endpoint: str | ConnectionOptions = DEFAULT_ENDPOINT,
        api_key: str | None = None,
        **options: Unpack[ConnectionKeywords],
    ) -> None:
        self._client = self._twin(ConnectionOptions.of(endpoint, api_key, options))
        self._loop = LoopThread(self._thread_name)
        self._close_lock = threading.Lock()
        self._prepare()

    def _twin(self, options: ConnectionOptions) -> AsyncClient:
        """The async client this one runs."""
        raise NotImplementedError

    def _prepare(self) -> None:
        """Set up what a client adds (called at the end of ``__init__``)."""

    @classmethod
    def from_env(cls, **overrides: Any) -> Self:
        """A client for ``TIDINGS_ENDPOINT`` (default ``localhost:8080``) with ``TIDINGS_API_KEY``;
        keyword arguments override them."""
        return cls(ConnectionOptions.from_env(**overrides))

    @property
    def options(self) -> ConnectionOptions:
        """The connection options the client was made with (to make another client the same way)."""
        return self._client.options

    @property
    def endpoint(self) -> str:
        """The ``host:port`` the client connects to."""
        return self._client.endpoint

    def close(self) -> None:
        """Close the client: end its subscriptions and connection, and stop its thread. Idempotent."""
        with self._close_lock:
            if self._loop.is_closed:
                return
            try:
                self._close_async()
            finally:
                self._loop.close()

    def _close_async(self) -> None:
        self._loop.run(self._client.close())

    def __repr__(self) -> str:
        state = "closed" if self._loop.is_closed else "open"
        return f"{type(self).__name__}(endpoint={self.endpoint!r}, state={state!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class TopicClient(_BlockingClient[TopicClientAsync]):
    """Publishes to and subscribes to topics (blocking); the same arguments as `TopicClientAsync`.

    Use it as a context manager, or call `close`; it owns one background thread (its event loop), plus one
    per subscription that delivers to callbacks.
    """

    _thread_name = "tidings-topic-client"

    def _twin(self, options: ConnectionOptions) -> TopicClientAsync:
        return TopicClientAsync(options)

    def _prepare(self) -> None:
        self._delivering: list[Subscription] = []

    def publish(
        self, cache_name: str, topic_name: str, value: str | bytes
    ) -> TopicPublish.Success | TopicPublish.Error:
        """Publish ``value`` (text for ``str``, binary for ``bytes``) to a topic."""
        return self._loop.run(self._client.publish(cache_name, topic_name, value))

    def put_webhook(
        self, cache_name: str, webhook_name: str, topic_name: str, url: str
    ) -> PutWebhook.Success | PutWebhook.Error:
        """Create or replace a webhook; see `TopicClientAsync.put_webhook`."""
        return self._loop.run(self._client.put_webhook(cache_name, webhook_name, topic_name, url))

    def list_webhooks(self, cache_name: str) -> ListWebhooks.Success | ListWebhooks.Error:
        """The cache's webhooks, sorted by name."""
        return self._loop.run(self._client.list_webhooks(cache_name))

    def delete_webhook(self, cache_name: str, webhook_name: str) -> DeleteWebhook.Success | DeleteWebhook.Error:
        """Delete a webhook; its deliveries stop."""
        return self._loop.run(self._client.delete_webhook(cache_name, webhook_name))

    def get_webhook_secret(
        self, cache_name: str, webhook_name: str
    ) -> GetWebhookSecret.Success | GetWebhookSecret.Error:
        """The secret the webhook's deliveries are signed with."""
        return self._loop.run(self._client.get_webhook_secret(cache_name, webhook_name))

    def rotate_webhook_secret(
        self, cache_name: str, webhook_name: str
    ) -> RotateWebhookSecret.Success | RotateWebhookSecret.Error:
        """Give the webhook a new secret; the old one stops signing at once."""
        return self._loop.run(self._client.rotate_webhook_secret(cache_name, webhook_name))

    def subscribe(
        self,
        cache_name: str,
        topic_name: str,
        *,
        resume_at_sequence_number: int = 0,
        resume_at_sequence_page: int = 0,
        include_heartbeats: bool = False,
        include_discontinuities: bool = False,
        on_item: Callback | None = None,
        on_discontinuity: Callback | None = None,
        on_heartbeat: Callback | None = None,
        on_error: Callback | None = None,
    ) -> TopicSubscribe.Subscription | TopicSubscribe.Error:
        """Subscribe to a topic; see `TopicClientAsync.subscribe`. With callbacks, a thread owned by the
        subscription calls them, one item at a time, until the final Error (joined by `close`)."""
        response = self._loop.run(
            self._client.subscribe(
                cache_name,
                topic_name,
                resume_at_sequence_number=resume_at_sequence_number,
                resume_at_sequence_page=resume_at_sequence_page,
                include_heartbeats=include_heartbeats or on_heartbeat is not None,
                include_discontinuities=include_discontinuities or on_discontinuity is not None,
            )
        )
        if isinstance(response, TopicSubscribe.Error):
            return response
        subscription = Subscription(response, self._loop)
        callbacks = Callbacks(on_item, on_discontinuity, on_heartbeat, on_error)
        if callbacks.are_set:
            subscription.deliver_to(callbacks)
            self._delivering = [other for other in self._delivering if other.is_delivering]
            self._delivering.append(subscription)
        return subscription

    def _close_async(self) -> None:
        self._loop.run(self._client.close())
        for subscription in self._delivering:
            subscription.join()
        self._delivering.clear()


class CacheClient(_BlockingClient[CacheClientAsync]):
    """Manages caches (blocking); the same arguments as `CacheClientAsync`. A context manager, or `close`."""

    _thread_name = "tidings-cache-client"

    def _twin(self, options: ConnectionOptions) -> CacheClientAsync:
        return CacheClientAsync(options)

    def create_cache(self, cache_name: str) -> CreateCache.Success | CreateCache.CacheAlreadyExists | CreateCache.Error:
        """Create a cache; answers ``CacheAlreadyExists`` if there is one with that name."""
        return self._loop.run(self._client.create_cache(cache_name))

    def delete_cache(self, cache_name: str) -> DeleteCache.Success | DeleteCache.Error:
        """Delete a cache; its topics' subscriptions end with ``CACHE_NOT_FOUND``."""
        return self._loop.run(self._client.delete_cache(cache_name))

    def list_caches(self) -> ListCaches.Success | ListCaches.Error:
        """Every cache, sorted by name."""
        return self._loop.run(self._client.list_caches())


class AuthClient(_BlockingClient[AuthClientAsync]):
    """Mints disposable tokens (blocking); the same arguments as `AuthClientAsync`. A context manager, or `close`."""

    _thread_name = "tidings-auth-client"

    def _twin(self, options: ConnectionOptions) -> AuthClientAsync:
        return AuthClientAsync(options)

    def generate_disposable_token(
        self,
        scope: TopicScope | Iterable[TopicScope],
        expires_in: int | timedelta,
        token_id: str | None = None,
    ) -> GenerateDisposableToken.Success | GenerateDisposableToken.Error:
        """Mint a token allowing ``scope`` for ``expires_in``; see `AuthClientAsync.generate_disposable_token`."""
        return self._loop.run(self._client.generate_disposable_token(scope, expires_in, token_id))
