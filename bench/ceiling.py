"""The ceiling: the fastest do-nothing server of Momento's Topics protocol that grpc.aio allows.

It keeps no messages, checks nothing and answers at once, so the benchmarks can say how close tidings
comes to what Python + grpc.aio can do at all on this machine:

- ``Publish`` decodes the request with the generated deserializer and answers ``_Empty``.
- ``Subscribe`` writes a pre-encoded heartbeat, then one pre-encoded ``_SubscriptionItem`` per publish on
  its topic (identity serializer, no per-subscriber encoding). Every publish wakes all subscribers of the
  topic through one shared asyncio future, which is replaced on each publish.
- ``ScsControl`` ``CreateCache`` / ``ListCaches`` answer success.

Usage: ``python bench/ceiling.py --port P`` (prints ``listening on 127.0.0.1:P`` when ready).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any

import grpc
import uvloop
from google.protobuf.message import Message
from momento_wire_types import cachepubsub_pb2, common_pb2, controlclient_pb2

# The same options tidings must use: official clients ping every few seconds, also with no call in flight.
SERVER_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 1000),
    ("grpc.http2.max_ping_strikes", 0),
]

_EMPTY = common_pb2._Empty()
_HEARTBEAT = cachepubsub_pb2._SubscriptionItem(heartbeat=cachepubsub_pb2._Heartbeat()).SerializeToString()


def _identity(message: bytes) -> bytes:
    return message


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


def encode_item(payload_size: int) -> bytes:
    """Return the one item every subscriber receives: a binary value of ``payload_size`` bytes.

    It carries no sequence number (0 = not provided): the bytes are encoded once, at start-up.
    """
    item = cachepubsub_pb2._TopicItem(value=cachepubsub_pb2._TopicValue(binary=b"x" * payload_size))
    return cachepubsub_pb2._SubscriptionItem(item=item).SerializeToString()


class _Topic:
    """Publish count and the shared wake-up future of one topic."""

    __slots__ = ("published", "wakeup")

    def __init__(self) -> None:
        self.published = 0
        self.wakeup: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def publish(self) -> None:
        self.published += 1
        wakeup = self.wakeup
        self.wakeup = asyncio.get_running_loop().create_future()
        if not wakeup.done():
            wakeup.set_result(None)

    async def wait_for_publish(self) -> None:
        wakeup = self.wakeup
        try:
            await wakeup
        except asyncio.CancelledError:
            # Cancelling a task that awaits a future cancels the future: one subscriber leaving cancels
            # the shared one. Renew it, re-raise for the cancelled task, and let the others (woken with
            # CancelledError although nobody cancelled them) simply look again.
            if wakeup.cancelled() and self.wakeup is wakeup:
                self.wakeup = asyncio.get_running_loop().create_future()
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise


class CeilingServicer:
    """Handlers of the Pubsub and ScsControl methods the benchmarks use."""

    def __init__(self, item: bytes) -> None:
        self._item = item
        self._topics: dict[tuple[str, str], _Topic] = {}
        self._caches: set[str] = set()

    def _topic(self, cache_name: str, topic: str) -> _Topic:
        key = (cache_name, topic)
        state = self._topics.get(key)
        if state is None:
            state = self._topics[key] = _Topic()
        return state

    async def publish(
        self, request: cachepubsub_pb2._PublishRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> common_pb2._Empty:
        self._topic(request.cache_name, request.topic).publish()
        return _EMPTY

    async def subscribe(
        self, request: cachepubsub_pb2._SubscriptionRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        topic = self._topic(request.cache_name, request.topic)
        item = self._item
        await context.write(_HEARTBEAT)
        delivered = topic.published
        while True:
            # One write per publish, none lost: a publish during our write is picked up on the next turn.
            if delivered == topic.published:
                await topic.wait_for_publish()
                continue
            delivered += 1
            await context.write(item)

    async def create_cache(
        self, request: controlclient_pb2._CreateCacheRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> controlclient_pb2._CreateCacheResponse:
        self._caches.add(request.cache_name)
        return controlclient_pb2._CreateCacheResponse()

    async def list_caches(
        self, request: controlclient_pb2._ListCachesRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> controlclient_pb2._ListCachesResponse:
        caches = [controlclient_pb2._Cache(cache_name=name) for name in sorted(self._caches)]
        return controlclient_pb2._ListCachesResponse(cache=caches)

    def generic_handlers(self) -> tuple[grpc.GenericRpcHandler[Any, Any], ...]:
        """Return the gRPC handlers, with an identity serializer for the pre-encoded subscription items."""
        pubsub = {
            "Publish": grpc.unary_unary_rpc_method_handler(
                self.publish,
                request_deserializer=cachepubsub_pb2._PublishRequest.FromString,
                response_serializer=_serialize,
            ),
            "Subscribe": grpc.unary_stream_rpc_method_handler(
                self.subscribe,
                request_deserializer=cachepubsub_pb2._SubscriptionRequest.FromString,
                response_serializer=_identity,
            ),
        }
        control = {
            "CreateCache": grpc.unary_unary_rpc_method_handler(
                self.create_cache,
                request_deserializer=controlclient_pb2._CreateCacheRequest.FromString,
                response_serializer=_serialize,
            ),
            "ListCaches": grpc.unary_unary_rpc_method_handler(
                self.list_caches,
                request_deserializer=controlclient_pb2._ListCachesRequest.FromString,
                response_serializer=_serialize,
            ),
        }
        return (
            grpc.method_handlers_generic_handler("cache_client.pubsub.Pubsub", pubsub),
            grpc.method_handlers_generic_handler("control_client.ScsControl", control),
        )


async def serve(host: str, port: int, payload_size: int) -> None:
    """Serve until SIGTERM or SIGINT, then stop at once (the benchmarks keep nothing)."""
    server = grpc.aio.server(options=SERVER_OPTIONS)
    server.add_generic_rpc_handlers(CeilingServicer(encode_item(payload_size)).generic_handlers())
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"listening on {host}:{bound}", flush=True)
    try:
        await stop.wait()
    finally:
        await server.stop(grace=0.5)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--payload-size", type=int, default=64, help="bytes of value in each item")
    args = parser.parse_args(argv)
    uvloop.run(serve(args.host, args.port, args.payload_size))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
