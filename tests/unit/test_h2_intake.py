"""What a connection holds of requests still arriving (`RequestIntake`), and how it reads a large read (one
slice per loop turn), without sockets: bytes in, bytes out."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import h2.config
import h2.connection
import h2.events

from tests.unit._support import RecordingTransport, grpc_request_headers
from tidings.server.grpc._h2._call import H2Call
from tidings.server.grpc._h2._calls import EXPIRE_BATCH
from tidings.server.grpc._h2._connection import ConnectionOptions, H2Connection, Route
from tidings.server.grpc._h2._head import RequestHead
from tidings.server.grpc._h2._intake import RequestIntake
from tidings.server.grpc._h2._limits import RECEIVE_SLICE, HeaderRate


def _call(stream_id: int) -> H2Call:
    return H2Call(cast(Any, None), stream_id, RequestHead([(b":path", b"/p")]))


def _intake(header_budget: int = 10_000) -> RequestIntake:
    return RequestIntake(body_budget=100_000, header_budget=header_budget, header_rate=HeaderRate())


def test_intake_admits_calls_within_its_header_budget() -> None:
    intake = _intake(header_budget=3000)

    admitted = [intake.admit(_call(stream_id), 1000, now=1.0) for stream_id in (1, 3, 5, 7)]

    assert admitted == [True, True, True, False]
    assert (intake.header_held, len(intake)) == (3000, 3)


def test_intake_release_gives_back_what_a_call_held() -> None:
    intake = _intake()
    first, second = _call(1), _call(3)
    intake.admit(first, 1000, now=1.0)
    intake.admit(second, 1000, now=1.0)
    intake.receive(first, b"x" * 400, 400)
    intake.receive(second, b"x" * 500, 512)  # padded: 12 bytes of padding count against the window

    received = intake.release(second)
    again = intake.release(second)

    assert (received, again) == (512, 0)
    assert (intake.header_held, intake.body_held) == (1000, 400)
    assert second.body == bytearray()
    assert intake.get(3) is None


def test_intake_expires_the_oldest_calls_first() -> None:
    intake = _intake()
    calls = [_call(stream_id) for stream_id in (1, 3, 5)]
    for call, arrived in zip(calls, (1.0, 2.0, 3.0), strict=True):
        intake.admit(call, 100, now=arrived)

    assert intake.expired(received_before=2.5, limit=10) == calls[:2]
    assert intake.expired(received_before=1.0, limit=10) == []


async def _no_call(request: bytes, context: Any) -> bytes:
    return b""


def _pings_acknowledged(client: h2.connection.H2Connection, transport: RecordingTransport) -> int:
    events = client.receive_data(bytes(transport.written))
    transport.written.clear()
    return sum(isinstance(event, h2.events.PingAckReceived) for event in events)


async def test_connection_decodes_a_large_read_one_slice_per_loop_turn() -> None:
    options = ConnectionOptions({"/p": Route(_no_call, streaming=False)}, 1024, 100, set(), set())
    connection, transport = H2Connection(options), RecordingTransport()
    connection.connection_made(cast(Any, transport))
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    client.initiate_connection()
    connection.data_received(client.data_to_send())
    await asyncio.sleep(0)
    _pings_acknowledged(client, transport)
    pings = 3 * RECEIVE_SLICE // 17 + 10  # 17 bytes each: a bit more than three slices in one read
    for number in range(pings):
        client.ping(number.to_bytes(8, "big"))
    read = client.data_to_send()
    assert 3 * RECEIVE_SLICE < len(read) < 4 * RECEIVE_SLICE

    connection.data_received(read)
    paused = not transport.reading
    # Another connection's work, scheduled as the read arrives: it runs before the read is all decoded.
    seen_by_others: list[int] = []
    asyncio.get_running_loop().call_soon(lambda: seen_by_others.append(_pings_acknowledged(client, transport)))
    acknowledged = 0
    for _ in range(5):
        await asyncio.sleep(0)
        acknowledged += _pings_acknowledged(client, transport)

    assert paused  # nothing more is read while a read is being decoded
    assert transport.reading
    assert 0 < seen_by_others[0] < 2 * RECEIVE_SLICE // 17 + 1  # at most two slices decoded (and answered) by then
    assert seen_by_others[0] + acknowledged == pings


def test_intake_expires_at_most_the_limit_oldest_first() -> None:
    intake = _intake()
    calls = [_call(stream_id) for stream_id in (1, 3, 5)]
    for call in calls:
        intake.admit(call, 100, now=1.0)

    assert intake.expired(received_before=2.0, limit=2) == calls[:2]


async def test_connection_answers_expired_requests_one_batch_per_loop_turn() -> None:
    publish = Route(_no_call, streaming=False)
    options = ConnectionOptions({"/cache_client.pubsub.Pubsub/Publish": publish}, 1024, 10_000, set(), set())
    connection, transport = H2Connection(options), RecordingTransport()
    connection.connection_made(cast(Any, transport))
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    client.initiate_connection()
    connection.data_received(client.data_to_send())
    requests = EXPIRE_BATCH * 2 + 10
    for _ in range(requests):  # headers, and a body that never comes
        client.send_headers(client.get_next_available_stream_id(), grpc_request_headers("Publish"))
        connection.data_received(client.data_to_send())

    def answered() -> int:
        events = client.receive_data(bytes(transport.written))
        transport.written.clear()
        return sum(isinstance(event, h2.events.StreamEnded) for event in events)

    await asyncio.sleep(0)
    answered_before = answered()  # the server's SETTINGS and acknowledgements: no call is answered yet
    connection.expire_requests(received_before=asyncio.get_running_loop().time() + 1)
    per_turn = []
    for _ in range(4):
        await asyncio.sleep(0)
        per_turn.append(answered())

    assert answered_before == 0
    assert per_turn == [EXPIRE_BATCH, EXPIRE_BATCH, 10, 0]
