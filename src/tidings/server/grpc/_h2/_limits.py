"""What one client may make the h2 transport hold or do before its calls run (README *What the server guards against*).

Until a call's request is whole, nothing has checked it but its headers, so each connection bounds:

- **its streams**: at most ``max_concurrent_streams`` open at once, advertised in SETTINGS (``h2`` refuses a
  HEADERS frame past it, closing the connection: the client ignored the setting);
- **its unfinished requests**: their body bytes within `request_budget` (a few times the largest request),
  which is the connection's flow-control window, given back only as requests complete: a client cannot send
  more ahead (a client that does not stop is closed by ``h2``, FLOW_CONTROL_ERROR). Their decoded headers,
  plus `STREAM_COST` each, within `PENDING_HEADER_BUDGET`: past it a new stream is refused at its HEADERS
  (REFUSED_STREAM). A request stays unfinished for the request timeout at most;
- **each request's headers**: `MAX_HEADER_LIST_SIZE` decoded bytes, advertised in SETTINGS; a larger list is
  answered RESOURCE_EXHAUSTED on its stream, and one past `MAX_DECODED_HEADER_LIST_SIZE` closes the
  connection (``h2``'s HPACK decoder stops there);
- **the header bytes it makes the server decode for nothing**: those of requests refused at their headers (a
  bad token, a limit, an unknown method...) or never completed, and trailers, at most
  `REFUSED_HEADER_BYTES_PER_SECOND` on average (`HeaderRate`), since HPACK lets a few bytes on the wire stand
  for a large header again and again. Past it: GOAWAY ENHANCE_YOUR_CALM. Served requests are not counted: their
  headers cost what a client that publishes as fast as the server answers costs, which a rate could not tell
  from a hostile one (measured: decoding is about as dear per byte on the wire for both);
- **the work one read gives the server**: at most `RECEIVE_SLICE` bytes are decoded per loop turn, so that other
  connections are served between the slices of a large read.

Violations are logged through `tidings.server.connections.Notices`: one line a minute at most for each kind.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Final

from tidings.server.core import TokenBucket
from tidings.server.grpc._h2._wire import PREFIX_SIZE

# Decoded size of a request's header list (RFC 7541: name + value + 32 per field), advertised in SETTINGS.
# Requests carry a dozen headers and a token of at most 8 KiB (a longer one is refused as UNAUTHENTICATED).
MAX_HEADER_LIST_SIZE: Final = 16 * 1024
# Past this much a header list is not decoded further: the connection is closed (GOAWAY ENHANCE_YOUR_CALM).
MAX_DECODED_HEADER_LIST_SIZE: Final = 64 * 1024
# What one stream whose request is still arriving costs the server besides its headers (h2's stream state, the
# call: measured, 1.8 KiB with a dozen headers, most of them references to HPACK's table).
STREAM_COST: Final = 1024
# Bodies of unfinished requests a connection may have sent ahead, in largest requests.
BUDGET_REQUESTS: Final = 4
# The flow-control window of a new HTTP/2 connection (RFC 9113 6.9.2): only WINDOW_UPDATE widens it.
INITIAL_CONNECTION_WINDOW: Final = 65_535
# Decoded headers (and STREAM_COST) of a connection's unfinished requests: 8 MiB is 5,000 requests of 1.6 KiB.
# A burst of calls larger than the flow-control window leaves all of their HEADERS waiting for their DATA
# (measured with grpcio: 2,000 publishes of 4 KB at once on one channel); they must fit.
PENDING_HEADER_BUDGET: Final = 8 * 1024 * 1024
# Header bytes of requests not served that a connection may make the server decode: per second on average,
# and at once (4 MiB: a burst of 2,500 subscribes with an expired token, answered UNAUTHENTICATED, fits).
REFUSED_HEADER_BYTES_PER_SECOND: Final = 1024 * 1024
REFUSED_HEADER_BURST: Final = 4 * 1024 * 1024
# Received bytes decoded per loop turn and connection. Decoding is the dearest with HPACK references to small
# headers (about 2 µs per byte on the wire, measured): 16 KiB is some 35 ms of work at worst.
RECEIVE_SLICE: Final = 4 * 1024


def request_budget(max_message_length: int) -> int:
    """Body bytes of unfinished requests one connection may have the server hold: `BUDGET_REQUESTS` of the
    largest (a message of ``max_message_length`` with its prefix), and at least the 65,535 bytes HTTP/2 opens a
    connection's window with."""
    return max(INITIAL_CONNECTION_WINDOW, BUDGET_REQUESTS * (max_message_length + PREFIX_SIZE))


def header_list_size(headers: Sequence[tuple[bytes, bytes]]) -> int:
    """The decoded size of a header list as HTTP/2 counts it (RFC 7540 6.5.2): names, values, 32 per field."""
    size = 32 * len(headers)
    for name, value in headers:
        size += len(name) + len(value)
    return size


class HeaderRate:
    """A token bucket (core's `TokenBucket`) of decoded header bytes: `charge` spends, time refills at ``rate``
    per second up to ``burst``."""

    __slots__ = ("_bucket", "_clock")

    def __init__(
        self,
        rate: float = REFUSED_HEADER_BYTES_PER_SECOND,
        burst: float = REFUSED_HEADER_BURST,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._bucket = TokenBucket(rate, burst, clock())

    def charge(self, size: int) -> bool:
        """Spend ``size`` bytes; False, spending nothing, when there are not that many (over the rate)."""
        return self._bucket.try_take(self._clock(), size)
