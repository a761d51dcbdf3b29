"""gRPC over HTTP/2 on asyncio and ``h2`` (``--grpc-transport h2``): the same servicers, without grpc-core.

One `asyncio.Protocol` per connection (``_connection``) drives an ``h2`` state machine; each call is a task
running the servicer with a `_call.H2Call` as its context; all frames due on a connection in one loop turn
leave in one ``transport.write``. `H2Server` listens, reaps dead connections and shuts down with GOAWAY.
"""

from tidings.server.grpc._h2._server import KEEPALIVE_TIME, KEEPALIVE_TIMEOUT, H2Server, tls_context

__all__ = ["KEEPALIVE_TIME", "KEEPALIVE_TIMEOUT", "H2Server", "tls_context"]
