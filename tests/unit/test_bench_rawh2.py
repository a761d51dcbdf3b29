"""The scale benchmark's raw-frame HTTP/2 client (bench/_rawh2.py), sans-IO: bytes in, messages, ends and bytes
out, including every read split at every offset."""

from __future__ import annotations

import importlib
import struct
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import hpack
import pytest

BENCH = Path(__file__).parents[2] / "bench"
AUTHORITY = "127.0.0.1:8080"
SUBSCRIBE = "/cache_client.pubsub.Pubsub/Subscribe"


@pytest.fixture
def rawh2(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCH))
    sys.modules.pop("_rawh2", None)
    return importlib.import_module("_rawh2")


class Recorder:
    """The events a connection reports, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def on_message(self, tag: int, message: bytes) -> None:
        self.events.append(("message", tag, message))

    def on_end(self, tag: int, status: int, message: str) -> None:
        self.events.append(("end", tag, status, message))


def frames(rawh2: ModuleType, data: bytes) -> list[tuple[int, int, int, bytes]]:
    """(type, flags, stream id, payload) of each frame in ``data``."""
    found, offset = [], 0
    while offset < len(data):
        size = int.from_bytes(data[offset : offset + 3])
        kind, flags, stream_id = data[offset + 3], data[offset + 4], int.from_bytes(data[offset + 5 : offset + 9])
        found.append((kind, flags, stream_id, data[offset + 9 : offset + 9 + size]))
        offset += 9 + size
    return found


def grpc_message(message: bytes) -> bytes:
    return b"\0" + len(message).to_bytes(4) + message


def connection(rawh2: ModuleType, streams: int = 2, window: int | None = None) -> tuple[Any, Recorder]:
    recorder = Recorder()
    kwargs = {} if window is None else {"window": window}
    client = rawh2.ClientConnection(recorder.on_message, recorder.on_end, **kwargs)
    call = rawh2.Call.of(rawh2.request_header_block(SUBSCRIBE, AUTHORITY), b"request")
    for tag in range(streams):
        client.start(call, 10 + tag)
    client.data_to_send()
    return client, recorder


@pytest.mark.parametrize(
    ("value", "prefix_bits", "encoded"),
    [(10, 5, b"\x0a"), (1337, 5, b"\x1f\x9a\x0a"), (42, 8, b"\x2a"), (31, 4, b"\x0f\x10"), (127, 7, b"\x7f\x00")],
    ids=["fits", "rfc-7541-c.1.2", "whole-byte", "content-type-index", "exactly-the-limit"],
)
def test_hpack_integer_encodes_as_rfc_7541(rawh2: ModuleType, value: int, prefix_bits: int, encoded: bytes) -> None:
    assert rawh2.hpack_integer(value, prefix_bits) == encoded


def test_request_header_block_decodes_to_the_request_headers_and_leaves_the_table_empty(rawh2: ModuleType) -> None:
    metadata = (("cache", "scale"), ("authorization", "t" * 300))
    block = rawh2.request_header_block(SUBSCRIBE, AUTHORITY, metadata)
    decoder = hpack.Decoder()

    decoded = [decoder.decode(block, raw=True) for _ in range(2)]

    assert decoded[1] == decoded[0]
    assert decoded[0] == [
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b":path", SUBSCRIBE.encode()),
        (b":authority", AUTHORITY.encode()),
        (b"content-type", b"application/grpc"),
        (b"te", b"trailers"),
        (b"cache", b"scale"),
        (b"authorization", b"t" * 300),
    ]
    assert not decoder.header_table.dynamic_entries


def test_connection_starts_with_preface_settings_and_a_window_update(rawh2: ModuleType) -> None:
    client = rawh2.ClientConnection(Recorder().on_message, Recorder().on_end)

    sent = bytes(client.data_to_send())

    assert sent.startswith(rawh2.PREFACE)
    (settings_kind, _, _, settings), window_update = frames(rawh2, sent[len(rawh2.PREFACE) :])
    assert settings_kind == rawh2.SETTINGS
    assert dict(struct.iter_unpack(">HI", settings)) == {0x1: 0, 0x2: 0, 0x4: rawh2.WINDOW}
    assert window_update == (rawh2.WINDOW_UPDATE, 0, 0, (rawh2.WINDOW - 65_535).to_bytes(4))


def test_start_sends_the_same_header_block_and_one_data_frame_per_stream(rawh2: ModuleType) -> None:
    client, _ = connection(rawh2, streams=0)
    block = rawh2.request_header_block(SUBSCRIBE, AUTHORITY, (("cache", "scale"),))
    call = rawh2.Call.of(block, b"request")

    stream_ids = [client.start(call, tag) for tag in (7, 8)]

    assert stream_ids == [1, 3]
    assert frames(rawh2, bytes(client.data_to_send())) == [
        (rawh2.HEADERS, rawh2.END_HEADERS, 1, block),
        (rawh2.DATA, rawh2.END_STREAM, 1, grpc_message(b"request")),
        (rawh2.HEADERS, rawh2.END_HEADERS, 3, block),
        (rawh2.DATA, rawh2.END_STREAM, 3, grpc_message(b"request")),
    ]
    assert client.open_streams == 2


def server_bytes(rawh2: ModuleType) -> bytes:
    """What a server sends two streams: SETTINGS, response headers, messages (two in one frame, one split over
    two frames, one padded), a PING, trailers (OK on stream 1, an error over HEADERS + CONTINUATION on 3)."""
    frame = rawh2.frame
    encoder = hpack.Encoder()
    encoder.header_table_size = 0  # as the client's SETTINGS ask: nothing indexed
    ok_trailers = encoder.encode([(b"grpc-status", b"0")])
    error_trailers = encoder.encode([(b"grpc-status", b"5"), (b"grpc-message", b"cache not found%3A x")])
    split = grpc_message(b"split-message")
    return b"".join(
        [
            frame(rawh2.SETTINGS, 0, 0, struct.pack(">HI", 0x3, 100)),
            frame(rawh2.HEADERS, rawh2.END_HEADERS, 1, b"\x88"),
            frame(rawh2.HEADERS, rawh2.END_HEADERS, 3, b"\x88"),
            frame(rawh2.DATA, 0, 1, grpc_message(b"\x1aheartbeat")),
            frame(rawh2.DATA, 0, 3, grpc_message(b"\x0aone") + grpc_message(b"\x0atwo")),
            frame(rawh2.DATA, 0, 1, split[:7]),
            frame(rawh2.PING, 0, 0, b"pingpong"),
            frame(rawh2.DATA, 0, 1, split[7:]),
            frame(rawh2.DATA, rawh2.PADDED, 3, b"\x03" + grpc_message(b"padded") + b"\0\0\0"),
            frame(rawh2.HEADERS, rawh2.END_HEADERS | rawh2.END_STREAM, 1, ok_trailers),
            frame(rawh2.HEADERS, rawh2.END_STREAM, 3, error_trailers[:4]),
            frame(rawh2.CONTINUATION, rawh2.END_HEADERS, 3, error_trailers[4:]),
        ]
    )


EXPECTED_EVENTS = [
    ("message", 10, b"\x1aheartbeat"),
    ("message", 11, b"\x0aone"),
    ("message", 11, b"\x0atwo"),
    ("message", 10, b"split-message"),
    ("message", 11, b"padded"),
    ("end", 10, 0, ""),
    ("end", 11, 5, "cache not found: x"),
]


def test_receive_reports_messages_and_ends_and_acknowledges_settings_and_ping(rawh2: ModuleType) -> None:
    client, recorder = connection(rawh2)

    client.receive(server_bytes(rawh2))

    assert recorder.events == EXPECTED_EVENTS
    assert frames(rawh2, bytes(client.data_to_send())) == [
        (rawh2.SETTINGS, rawh2.ACK, 0, b""),
        (rawh2.PING, rawh2.ACK, 0, b"pingpong"),
    ]
    assert client.open_streams == 0


def test_receive_is_the_same_whatever_the_reads(rawh2: ModuleType) -> None:
    data = server_bytes(rawh2)
    for cut in range(1, len(data)):
        client, recorder = connection(rawh2)

        client.receive(data[:cut])
        client.receive(data[cut:])

        assert recorder.events == EXPECTED_EVENTS, cut
        assert len(frames(rawh2, bytes(client.data_to_send()))) == 2, cut


def test_receive_byte_by_byte(rawh2: ModuleType) -> None:
    client, recorder = connection(rawh2)

    for offset, _ in enumerate(data := server_bytes(rawh2)):
        client.receive(data[offset : offset + 1])

    assert recorder.events == EXPECTED_EVENTS


def test_received_data_is_acknowledged_once_half_a_window_is_used(rawh2: ModuleType) -> None:
    client, _ = connection(rawh2, window=100)
    heartbeat = rawh2.frame(rawh2.DATA, 0, 1, grpc_message(b"\x1a" * 15))  # 20 bytes of flow-controlled data
    other_stream = rawh2.frame(rawh2.DATA, 0, 3, grpc_message(b"\x1a" * 15))

    client.receive(heartbeat * 2 + other_stream)
    assert frames(rawh2, bytes(client.data_to_send())) == [(rawh2.WINDOW_UPDATE, 0, 0, (60).to_bytes(4))]

    client.receive(heartbeat)
    assert frames(rawh2, bytes(client.data_to_send())) == [(rawh2.WINDOW_UPDATE, 0, 1, (60).to_bytes(4))]


def test_requests_wait_for_the_servers_connection_window(rawh2: ModuleType) -> None:
    client, _ = connection(rawh2, streams=0)
    call = rawh2.Call.of(rawh2.request_header_block(SUBSCRIBE, AUTHORITY), b"x" * 16_000)
    for tag in range(5):
        client.start(call, tag)

    sent = frames(rawh2, bytes(client.data_to_send()))
    client.receive(rawh2.frame(rawh2.WINDOW_UPDATE, 0, 0, (20_000).to_bytes(4)))
    released = frames(rawh2, bytes(client.data_to_send()))

    assert [stream_id for kind, _, stream_id, _ in sent if kind == rawh2.DATA] == [1, 3, 5, 7]
    assert [stream_id for kind, _, stream_id, _ in released if kind == rawh2.DATA] == [9]


def test_reset_and_goaway_end_the_streams_they_name(rawh2: ModuleType) -> None:
    client, recorder = connection(rawh2, streams=3)

    client.receive(rawh2.frame(rawh2.RST_STREAM, 0, 1, (8).to_bytes(4)))
    client.receive(rawh2.frame(rawh2.GOAWAY, 0, 0, (3).to_bytes(4) + (0).to_bytes(4)))

    assert recorder.events == [
        ("end", 10, -1, "stream reset by the server (error 8)"),
        ("end", 12, -1, "not served: the server sent GOAWAY (error 0)"),
    ]
    assert client.goaway == 0
    client.fail_all("connection closed")
    assert recorder.events[-1] == ("end", 11, -1, "connection closed")
    assert client.open_streams == 0


def test_data_of_an_ended_stream_is_dropped(rawh2: ModuleType) -> None:
    client, recorder = connection(rawh2, streams=1)
    client.receive(rawh2.frame(rawh2.RST_STREAM, 0, 1, (8).to_bytes(4)))

    client.receive(rawh2.frame(rawh2.DATA, 0, 1, grpc_message(b"\x1a")))

    assert [event[0] for event in recorder.events] == ["end"]


def test_a_frame_larger_than_advertised_is_a_protocol_error(rawh2: ModuleType) -> None:
    client, _ = connection(rawh2)

    with pytest.raises(rawh2.ProtocolError, match="16385 bytes"):
        client.receive(rawh2.frame(rawh2.DATA, 0, 1, b"\0" * 16_385))
