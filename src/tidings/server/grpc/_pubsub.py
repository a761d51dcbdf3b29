"""``cache_client.pubsub.Pubsub``: Publish and Subscribe.

Requests arrive as raw bytes and are parsed here, so a malformed request is INVALID_ARGUMENT rather than
grpcio's generic failure. Responses leave as bytes: each message is encoded once and the same bytes are
written to every subscriber (the README's *Memory: what retention can hold*).
"""

from __future__ import annotations

from time import perf_counter
from typing import Any, Final

import grpc
import grpc.aio
from momento_wire_types import cachepubsub_pb2 as pb

from tidings.server.auth import Authenticator
from tidings.server.core import Discontinuity, Encoder, InvalidArgument, Message, Position, TopicsService
from tidings.server.grpc._auth import credential_of
from tidings.server.grpc._context import CallContext, StreamContext
from tidings.server.grpc._status import guarded, parse_request

SERVICE: Final = "cache_client.pubsub.Pubsub"
EMPTY: Final = b""  # common._Empty
HEARTBEAT_BYTES: Final = pb._SubscriptionItem(heartbeat=pb._Heartbeat()).SerializeToString()
_ENCODING: Final = "grpc"


def encode_message(message: Message) -> bytes:
    """The wire bytes of ``message`` as a ``_SubscriptionItem``, encoded once per message."""
    return message.encoded(_ENCODING, _encode_item)


def _encode_item(message: Message) -> bytes:
    value = message.value
    topic_value = pb._TopicValue(text=value) if isinstance(value, str) else pb._TopicValue(binary=value)
    return pb._SubscriptionItem(
        item=pb._TopicItem(
            topic_sequence_number=message.sequence_number,
            value=topic_value,
            publisher_id=message.publisher_id,
            sequence_page=message.sequence_page,
        )
    ).SerializeToString()


def encode_discontinuity(discontinuity: Discontinuity) -> bytes:
    """The wire bytes of a discontinuity item."""
    return pb._SubscriptionItem(
        discontinuity=pb._Discontinuity(
            last_topic_sequence=discontinuity.last_topic_sequence,
            new_topic_sequence=discontinuity.new_topic_sequence,
            new_sequence_page=discontinuity.new_sequence_page,
        )
    ).SerializeToString()


# A stream's first message is a heartbeat, as Momento's are.
ENCODER: Final = Encoder(encode_message, encode_discontinuity, HEARTBEAT_BYTES, preamble=HEARTBEAT_BYTES)


class PubsubServicer:
    """Links Publish and Subscribe to the topics service."""

    def __init__(self, service: TopicsService, authenticator: Authenticator) -> None:
        self._service = service
        self._authenticate = authenticator.authenticate
        self.stats = service.stats_for("grpc")

    @guarded
    async def publish(self, data: bytes, context: CallContext) -> bytes:
        """Publish one value; answers ``_Empty``."""
        started = perf_counter()
        principal = self._authenticate(credential_of(context))
        request = parse_request(pb._PublishRequest, data)
        kind = request.value.WhichOneof("kind")
        if kind is None:
            raise InvalidArgument("value is required: text or binary")
        value = request.value.text if kind == "text" else request.value.binary
        await self._service.publish(request.cache_name, request.topic, value, principal)
        stats = self.stats
        stats.publishes += 1
        stats.publish_latency.observe(perf_counter() - started)
        return EMPTY

    @guarded
    async def subscribe(self, data: bytes, context: StreamContext) -> None:
        """Stream a heartbeat, then the topic's items, discontinuities and idle heartbeats (the core delivers to
        the call's writer until the subscription ends)."""
        principal = self._authenticate(credential_of(context))
        request = parse_request(pb._SubscriptionRequest, data)
        subscription = await self._service.subscribe(
            request.cache_name,
            request.topic,
            Position(request.sequence_page, request.resume_at_topic_sequence_number),
            principal,
        )
        with subscription:
            await subscription.deliver(context.writer(), ENCODER, self.stats)

    def handlers(self) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
        """The method handlers to register under `SERVICE`."""
        return {
            "Publish": grpc.unary_unary_rpc_method_handler(self.publish),
            "Subscribe": grpc.unary_stream_rpc_method_handler(self.subscribe),
        }
