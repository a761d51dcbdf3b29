"""gRPC over HTTP/2 on asyncio and ``h2`` (``--grpc-transport h2``): the same servicers, without grpc-core.

One `asyncio.Protocol` per connection (``_connection``) drives an ``h2`` state machine (``_state``); each call is
a task running the servicer with a `_call.H2Call` as its context (``_calls``); all frames due on a connection in
one loop turn leave in one ``transport.write`` (``_output``). `H2Server` listens, reaps dead, slow and idle
connections and shuts down with GOAWAY. What a client may make a connection hold before its calls run is bounded
(``_limits``).
"""

from tidings.server.grpc._h2._limits import MAX_HEADER_LIST_SIZE
from tidings.server.grpc._h2._server import (
    IDLE_TIMEOUT,
    KEEPALIVE_TIME,
    KEEPALIVE_TIMEOUT,
    MAX_CONCURRENT_STREAMS,
    H2Server,
    tls_context,
)

__all__ = [
    "IDLE_TIMEOUT",
    "KEEPALIVE_TIME",
    "KEEPALIVE_TIMEOUT",
    "MAX_CONCURRENT_STREAMS",
    "MAX_HEADER_LIST_SIZE",
    "H2Server",
    "tls_context",
]
