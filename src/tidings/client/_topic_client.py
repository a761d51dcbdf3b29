"""`TopicClientAsync`: publish and subscribe over ``cache_client.pubsub.Pubsub`` with grpc.aio."""

from __future__ import annotations

import asyncio
from typing import Final

import grpc.aio
from momento_wire_types import cachepubsub_pb2 as pb
from momento_wire_types import common_pb2

from tidings.client._callbacks import Callback, Callbacks
from tidings.client._errors import error_from, invalid_argument
from tidings.client._responses import TopicPublish, TopicSubscribe
from tidings.client._subscription import OpenStream, StreamCall, SubscriptionAsync
from tidings.client._validation import name_problem, sequence_problem, value_problem
from tidings.client._webhook_client import WebhookCallsAsync

_PUBLISH: Final = "/cache_client.pubsub.Pubsub/Publish"
_SUBSCRIBE: Final = "/cache_client.pubsub.Pubsub/Subscribe"
_PUBLISHED: Final = TopicPublish.Success()
_PublishRequest = pb._PublishRequest
_TopicValue = pb._TopicValue
_SubscriptionRequest = pb._SubscriptionRequest


class TopicClientAsync(WebhookCallsAsync):
    """Publishes to and subscribes to topics, and manages their webhooks (asyncio).

    It takes a `ConnectionOptions`, or its fields: ``endpoint`` (the server's ``host:port``), ``api_key``
    (sent in the ``authorization`` header of every call; None is anonymous), and the keywords ``tls``,
    ``root_certificates``, ``timeout`` (bounds each publish and the start of each subscription; streams of
    items have no deadline) and ``headers`` (extra request metadata, for example Momento Local's
    fault-injection headers, docs/testing.md). Use it as an async context manager, or call `close`.
    """

    def _prepare(self) -> None:
        self._timeout = self._settings.timeout
        self._metadata = self._settings.metadata
        self._publish: grpc.aio.UnaryUnaryMultiCallable[pb._PublishRequest, common_pb2._Empty] | None = None
        self._subscribe: grpc.aio.UnaryStreamMultiCallable[pb._SubscriptionRequest, pb._SubscriptionItem] | None
        self._subscribe = None
        self._subscriptions: set[SubscriptionAsync] = set()
        self._delivering: set[asyncio.Task[None]] = set()

    async def publish(
        self, cache_name: str, topic_name: str, value: str | bytes
    ) -> TopicPublish.Success | TopicPublish.Error:
        """Publish ``value`` (text for ``str``, binary for ``bytes``) to a topic."""
        problem = (
            name_problem("cache_name", cache_name) or name_problem("topic_name", topic_name) or value_problem(value)
        )
        if problem is not None:
            return invalid_argument(TopicPublish.Error, problem)
        publish = self._publish or self._connect()[0]
        try:
            topic_value = _TopicValue(text=value) if isinstance(value, str) else _TopicValue(binary=value)
            request = _PublishRequest(cache_name=cache_name, topic=topic_name, value=topic_value)
        except ValueError:  # lone surrogates in a str
            return invalid_argument(TopicPublish.Error, "value must be valid UTF-8 text")
        try:
            await publish(request, timeout=self._timeout, metadata=self._metadata)
        except (grpc.aio.AioRpcError, asyncio.CancelledError) as error:
            if isinstance(error, asyncio.CancelledError) and not self._closed:
                raise  # the caller's task was cancelled, not the call
            return error_from(TopicPublish.Error, error)
        return _PUBLISHED

    async def subscribe(
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
    ) -> TopicSubscribe.SubscriptionAsync | TopicSubscribe.Error:
        """Subscribe to a topic; the subscription is live (the server acknowledged it) when this returns.

        ``resume_at_sequence_number`` 0 starts with the topic's newest retained item (the server's
        ``--subscribe-latest``), then what is published from now on; N > 0 replays the retained items from N
        (in page ``resume_at_sequence_page``, 0 for the current one) first. Heartbeats and discontinuities are
        delivered only when asked for. With any ``on_*`` callback (plain or async), a task delivers the items
        to the callbacks instead of the iterator; passing ``on_heartbeat`` or ``on_discontinuity`` asks for
        those items. A server that is restarting or too busy to take the call is asked again within the
        client's timeout.
        """
        problem = (
            name_problem("cache_name", cache_name)
            or name_problem("topic_name", topic_name)
            or sequence_problem("resume_at_sequence_number", resume_at_sequence_number)
            or sequence_problem("resume_at_sequence_page", resume_at_sequence_page)
        )
        if problem is not None:
            return invalid_argument(TopicSubscribe.Error, problem)
        subscription = SubscriptionAsync(
            self._stream_opener(cache_name, topic_name),
            cache_name,
            topic_name,
            resume_at_sequence_number=resume_at_sequence_number,
            resume_at_sequence_page=resume_at_sequence_page,
            include_heartbeats=include_heartbeats or on_heartbeat is not None,
            include_discontinuities=include_discontinuities or on_discontinuity is not None,
            on_closed=self._subscriptions.discard,
        )
        return await self._start(subscription, Callbacks(on_item, on_discontinuity, on_heartbeat, on_error))

    def _stream_opener(self, cache_name: str, topic_name: str) -> OpenStream:
        """What opens the topic's Subscribe streams at a resume point (the first, and each resubscription's)."""
        subscribe = self._subscribe or self._connect()[1]
        metadata = self._metadata

        def open_stream(resume_at: int, page: int) -> StreamCall:
            request = _SubscriptionRequest(
                cache_name=cache_name, topic=topic_name, resume_at_topic_sequence_number=resume_at, sequence_page=page
            )
            return subscribe(request, metadata=metadata)  # no deadline: a stream lasts as long as it is wanted

        return open_stream

    async def _start(
        self, subscription: SubscriptionAsync, callbacks: Callbacks
    ) -> TopicSubscribe.SubscriptionAsync | TopicSubscribe.Error:
        """Start ``subscription`` within the timeout, keep it (to end it on `close`), and deliver it to
        ``callbacks`` if there are any."""
        try:
            await subscription.start(self._timeout)
        except (grpc.aio.AioRpcError, TimeoutError, ConnectionError) as error:
            return error_from(TopicSubscribe.Error, error)
        except asyncio.CancelledError as error:
            if not self._closed:
                raise
            return error_from(TopicSubscribe.Error, error)
        if self._closed:  # closed while starting
            subscription.unsubscribe()
        else:
            self._subscriptions.add(subscription)
        if callbacks.are_set:
            delivery = subscription.deliver_to(callbacks)
            self._delivering.add(delivery)
            delivery.add_done_callback(self._delivering.discard)
        return subscription

    async def close(self) -> None:
        """End every subscription (each yields its final ``CANCELLED`` Error), wait for their callbacks,
        and close the connection. Idempotent; using the client afterwards raises RuntimeError."""
        if self._closed:
            return
        self._closed = True
        for subscription in list(self._subscriptions):
            subscription.unsubscribe()
        current = asyncio.current_task()
        deliveries = [delivery for delivery in self._delivering if delivery is not current]
        await asyncio.gather(*(asyncio.shield(delivery) for delivery in deliveries))
        self._publish = self._subscribe = None
        await super().close()

    def _connect(
        self,
    ) -> tuple[
        grpc.aio.UnaryUnaryMultiCallable[pb._PublishRequest, common_pb2._Empty],
        grpc.aio.UnaryStreamMultiCallable[pb._SubscriptionRequest, pb._SubscriptionItem],
    ]:
        """Open the channel on first use (so the client can be built outside the event loop that uses it)."""
        if self._closed:
            raise RuntimeError("the client is closed")
        # The webhook calls may have opened the channel already.
        channel = self._channel = self._channel or self._settings.open_channel()
        self._publish = channel.unary_unary(
            _PUBLISH,
            request_serializer=pb._PublishRequest.SerializeToString,
            response_deserializer=common_pb2._Empty.FromString,
            _registered_method=True,  # type: ignore[call-arg]  # missing from grpc-stubs
        )
        self._subscribe = channel.unary_stream(
            _SUBSCRIBE,
            request_serializer=pb._SubscriptionRequest.SerializeToString,
            response_deserializer=pb._SubscriptionItem.FromString,
            _registered_method=True,  # type: ignore[call-arg]  # missing from grpc-stubs
        )
        return self._publish, self._subscribe
