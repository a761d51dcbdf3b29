"""The h2 transport's own receive path (`_receive.H2Receive`): repeated header blocks served from the connection's
cache while the HPACK table is unchanged, DATA and WINDOW_UPDATE counted as ``h2`` counts them, and every frame it
does not take (or that is not plainly valid) left to ``h2`` with ``h2``'s answer. Without sockets: bytes in,
bytes out."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import h2.config
import h2.connection
import h2.errors
import h2.events
import pytest
from hyperframe.frame import ContinuationFrame, DataFrame, GoAwayFrame, HeadersFrame, WindowUpdateFrame

from tests.unit._support import RecordingTransport, grpc_request_headers
from tidings.server.grpc._h2._connection import ConnectionOptions, H2Connection, Route
from tidings.server.grpc._h2._head import HEAD_CACHE_SIZE, CountedTable, HeadCache, RequestHead
from tidings.server.grpc._h2._limits import RECEIVE_SLICE
from tidings.server.grpc._h2._server import H2Server

PATH = "/cache_client.pubsub.Pubsub/Publish"
REQUEST = b"\x00\x00\x00\x00\x03abc"  # a gRPC message of 3 bytes


class Served:
    """A connection fed by hand, and what its servicer saw: each call's body and ``x-who`` metadata."""

    def __init__(self, max_message_length: int = 1024, options: ConnectionOptions | None = None) -> None:
        self.calls: list[tuple[bytes, str]] = []
        if options is None:
            options = ConnectionOptions({}, max_message_length, 100, set(), set())
        options.routes[PATH] = Route(self._serve, streaming=False)
        self.connection = H2Connection(options)
        self.transport = RecordingTransport()
        self.connection.connection_made(cast(Any, self.transport))
        self.decoded = 0
        decoder = self.connection._h2.decoder
        decode = decoder.decode

        def counting(data: bytes, raw: bool = False) -> Any:
            self.decoded += 1
            return decode(data, raw=raw)

        decoder.decode = counting  # type: ignore[method-assign]

    async def _serve(self, request: bytes, context: Any) -> bytes:
        self.calls.append((request, dict(context.invocation_metadata()).get("x-who", "")))
        return b"ok"

    async def feed(self, *chunks: bytes) -> None:
        for chunk in chunks:
            self.connection.data_received(chunk)
            for _ in range(len(chunk) // RECEIVE_SLICE + 1):  # a large read is decoded one slice per loop turn
                await asyncio.sleep(0)
            assert self.connection._backlog is None
        for _ in range(3):  # the calls' tasks run, then their answers are flushed
            await asyncio.sleep(0)

    def goaway(self) -> int | None:
        """The error code of the GOAWAY the server sent, if it sent one."""
        written = bytes(self.transport.written)
        position = 0
        while position + 9 <= len(written):
            length = int.from_bytes(written[position : position + 3], "big")
            if written[position + 3] == 0x7:
                frame = GoAwayFrame(0)
                frame.parse_body(memoryview(written[position + 9 : position + 9 + length]))
                return frame.error_code
            position += 9 + length
        return None


def _client() -> h2.connection.H2Connection:
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    client.initiate_connection()
    return client


def _literal(name: bytes, value: bytes, *, indexed: bool = False) -> bytes:
    """An HPACK literal with a new name: with incremental indexing (added to the table) or without."""
    return bytes((0x40 if indexed else 0x00, len(name))) + name + bytes((len(value),)) + value


# A Publish call's headers with HPACK static-table references and literals that leave the table alone.
_BASE_BLOCK = (
    b"\x83\x86"  # :method POST, :scheme http
    + b"\x04"
    + bytes((len(PATH),))
    + PATH.encode()  # :path, name from the static table
    + _literal(b"content-type", b"application/grpc")
    + _literal(b"te", b"trailers")
)


def _call(stream_id: int, block: bytes) -> bytes:
    headers = HeadersFrame(stream_id, data=block, flags=["END_HEADERS"]).serialize()
    return headers + DataFrame(stream_id, data=REQUEST, flags=["END_STREAM"]).serialize()


def _preface() -> bytes:
    return _client().data_to_send()


async def test_a_repeated_header_block_is_decoded_once() -> None:
    served = Served()
    client = _client()
    await served.feed(client.data_to_send())
    for _ in range(10):  # h2's encoder indexes the headers on the first call: the later blocks are the same bytes
        stream_id = client.get_next_available_stream_id()
        client.send_headers(stream_id, [*grpc_request_headers("Publish"), (b"x-who", b"alice")])
        client.send_data(stream_id, REQUEST, end_stream=True)
        await served.feed(client.data_to_send())

    events = client.receive_data(bytes(served.transport.written))
    ended = [event for event in events if isinstance(event, h2.events.StreamEnded)]
    trailers = [dict(event.headers) for event in events if isinstance(event, h2.events.TrailersReceived)]
    assert served.calls == [(b"abc", "alice")] * 10
    assert len(ended) == 10
    assert [trailer[b"grpc-status"] for trailer in trailers] == [b"0"] * 10
    assert served.decoded == 2  # the first block (which indexed them) and the first of the repeated ones


async def test_the_same_bytes_after_the_table_changed_are_decoded_again() -> None:
    served = Served()
    newest = b"\xbe"  # the dynamic table's newest entry (index 62)
    await served.feed(
        _preface(),
        _call(1, _BASE_BLOCK + _literal(b"x-who", b"alice", indexed=True)),
        _call(3, _BASE_BLOCK + newest),  # decoded, and kept
        _call(5, _BASE_BLOCK + newest),  # the kept head
        _call(7, _BASE_BLOCK + _literal(b"x-who", b"bob", indexed=True)),  # the table changes
        _call(9, _BASE_BLOCK + newest),  # the same bytes as 3 and 5, now meaning bob
        _call(11, _BASE_BLOCK + newest),
    )

    assert [who for _, who in served.calls] == ["alice", "alice", "alice", "bob", "bob", "bob"]
    assert served.decoded == 4  # 1, 3, 7 and 9: 5 and 11 came from the cache


@pytest.mark.parametrize("split", range(0, 200, 7))
async def test_frames_split_anywhere_are_served_the_same(split: int) -> None:
    data = _preface() + b"".join(_call(stream_id, _BASE_BLOCK) for stream_id in (1, 3, 5, 7))
    served = Served()

    await served.feed(data[:split], data[split:])

    assert served.calls == [(b"abc", "")] * 4
    assert served.goaway() is None


async def test_frames_fed_a_byte_at_a_time_are_served_the_same() -> None:
    served = Served()
    await served.feed(_preface(), _call(1, _BASE_BLOCK))
    large = b"\x00\x00\x00\x03\xe8" + b"x" * 1000  # a message of 1,000 bytes
    data = _call(3, _BASE_BLOCK) + HeadersFrame(5, data=_BASE_BLOCK, flags=["END_HEADERS"]).serialize()
    data += DataFrame(5, data=large, flags=["END_STREAM"]).serialize()

    await served.feed(*(data[index : index + 1] for index in range(len(data))))

    assert served.calls == [(b"abc", ""), (b"abc", ""), (b"x" * 1000, "")]
    assert served.goaway() is None


async def test_a_header_block_in_continuation_frames_and_a_padded_body_go_through_h2() -> None:
    served = Served()
    first, rest = _BASE_BLOCK[:5], _BASE_BLOCK[5:]
    headers = (
        HeadersFrame(3, data=first).serialize() + ContinuationFrame(3, data=rest, flags=["END_HEADERS"]).serialize()
    )
    padded = DataFrame(3, data=REQUEST, flags=["END_STREAM", "PADDED"])
    padded.pad_length = 4

    await served.feed(_preface(), _call(1, _BASE_BLOCK), headers + padded.serialize(), _call(5, _BASE_BLOCK))

    assert served.calls == [(b"abc", "")] * 3
    assert served.goaway() is None


async def test_a_body_over_its_stream_window_is_refused_as_h2_refuses_it() -> None:
    served = Served(max_message_length=100_000)  # each stream's window: 100,006 bytes, the connection's larger
    part = DataFrame(3, data=b"x" * 60_000).serialize()
    frames = HeadersFrame(3, data=_BASE_BLOCK, flags=["END_HEADERS"]).serialize() + part

    await served.feed(_preface(), _call(1, _BASE_BLOCK), frames)
    assert served.goaway() is None  # within the window so far
    await served.feed(part)

    assert served.goaway() == h2.errors.ErrorCodes.FLOW_CONTROL_ERROR
    assert served.transport.closing


async def test_window_updates_open_the_windows_and_bad_ones_get_h2s_answer() -> None:
    served = Served()
    await served.feed(_preface(), _call(1, _BASE_BLOCK))
    state = served.connection._h2
    window = state.outbound_flow_control_window

    late = WindowUpdateFrame(1, window_increment=100).serialize()  # stream 1 has ended: nothing to open
    await served.feed(WindowUpdateFrame(0, window_increment=1000).serialize() + late)
    assert state.outbound_flow_control_window == window + 1000
    assert served.goaway() is None

    await served.feed(WindowUpdateFrame(0, window_increment=(1 << 31) - 1).serialize())
    assert served.goaway() == h2.errors.ErrorCodes.FLOW_CONTROL_ERROR


async def test_a_stream_id_out_of_order_is_a_protocol_error() -> None:
    served = Served()

    await served.feed(_preface(), _call(5, _BASE_BLOCK), _call(3, _BASE_BLOCK))

    assert served.calls == [(b"abc", "")]
    assert served.goaway() == h2.errors.ErrorCodes.PROTOCOL_ERROR


def test_the_cache_keeps_only_blocks_that_left_the_table_unchanged_and_stays_bounded() -> None:
    table = CountedTable()
    cache = HeadCache(table)
    head = RequestHead([(b":path", b"/p")])

    before = cache.changes
    table.add(b"x", b"1")
    cache.keep(b"changed it", head, before)
    assert cache.get(b"changed it") is None

    for number in range(HEAD_CACHE_SIZE + 1):
        cache.keep(b"%d" % number, head, cache.changes)
    assert cache.get(b"%d" % HEAD_CACHE_SIZE) is head
    assert cache.get(b"0") is None  # cleared when full

    table.maxsize = 100  # a size update changes what indices mean too
    assert cache.get(b"%d" % HEAD_CACHE_SIZE) is None
    assert not RequestHead([(b"content-length", b"3")]).cacheable


def _headers_without_a_body() -> tuple[H2Server, Served, h2.connection.H2Connection]:
    """A server's connection that received a Publish call's HEADERS, and the client that sent them."""
    server = H2Server({}, max_message_length=1024, handshake_timeout=10.0)
    served = Served(options=server._options)
    client = _client()
    served.connection.data_received(client.data_to_send())
    client.send_headers(1, grpc_request_headers("Publish"))
    served.connection.data_received(client.data_to_send())
    return server, served, client


async def test_a_request_whose_bytes_wait_in_the_connections_backlog_is_not_expired() -> None:
    server, served, client = _headers_without_a_body()
    connection = served.connection
    for number in range(3 * RECEIVE_SLICE // 17 + 1):  # a large read of PINGs, then the body
        client.ping(number.to_bytes(8, "big"))
    client.send_data(1, REQUEST, end_stream=True)
    connection.data_received(client.data_to_send())
    late = asyncio.get_running_loop().time() + 60  # far past the request timeout

    server._check(connection, late)  # the body is in the backlog: the delay is the server's
    assert connection.decoding_backlog
    for _ in range(8):  # a slice of the read per loop turn, then the call's task and its answer
        await asyncio.sleep(0)

    assert not connection.decoding_backlog
    assert served.calls == [(b"abc", "")]


async def test_a_request_not_whole_after_the_request_timeout_is_expired() -> None:
    server, served, client = _headers_without_a_body()

    server._check(served.connection, asyncio.get_running_loop().time() + 60)
    await served.feed()

    events = client.receive_data(bytes(served.transport.written))
    trailers = [dict(event.headers) for event in events if isinstance(event, h2.events.ResponseReceived)]
    assert trailers[0][b"grpc-status"] == b"4"  # DEADLINE_EXCEEDED
    assert served.calls == []
