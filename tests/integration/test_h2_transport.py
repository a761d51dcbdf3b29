"""The h2 gRPC transport (``--grpc-transport h2``) at the HTTP/2 level, with a raw ``h2`` client: what gRPC
clients never send (bad prefaces, oversized frames and headers, floods, resets mid request), flow control, and
many streams and connections. The rest of the suite runs over this transport too (Makefile ``test``)."""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import h2.errors
import h2.settings
import httpx
import pytest
from momento_wire_types import cachepubsub_pb2 as pb
from momento_wire_types import controlclient_pb2, controlclient_pb2_grpc

from tests.integration._h2client import GRPC_HEADERS, RawH2Client, grpc_frame
from tests.integration._server import ServerProcess
from tests.integration._tls import self_signed_certificate

StartServer = Callable[..., ServerProcess]

PUBLISH = "/cache_client.pubsub.Pubsub/Publish"
SUBSCRIBE = "/cache_client.pubsub.Pubsub/Subscribe"
LIST_CACHES = "/control_client.ScsControl/ListCaches"
CACHE = "h2-cache"


@pytest.fixture(scope="module")
def h2_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One h2-transport server for the module (heartbeats every 60 s: idle streams stay quiet)."""
    process = ServerProcess(
        tmp_path_factory.mktemp("h2"),
        ("--grpc-transport", "h2", "--heartbeat-interval", "60", "--create-cache", CACHE),
    ).start()
    yield process
    assert process.stop() == 0, "".join(process.log)


@pytest.fixture
def connect(h2_server: ServerProcess) -> Iterator[Callable[..., RawH2Client]]:
    """Open raw HTTP/2 connections to the module's server (closed at teardown)."""
    clients: list[RawH2Client] = []

    def open_client(initial_window: int | None = None) -> RawH2Client:
        client = RawH2Client(h2_server, initial_window)
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        client.close()


Connect = Callable[..., RawH2Client]


def _subscribe_request(topic: str, resume_at: int = 0) -> bytes:
    return pb._SubscriptionRequest(
        cache_name=CACHE, topic=topic, resume_at_topic_sequence_number=resume_at
    ).SerializeToString()


def _publish(server: ServerProcess, topic: str, value: str) -> None:
    request = pb._PublishRequest(cache_name=CACHE, topic=topic, value=pb._TopicValue(text=value))
    with grpc.insecure_channel(server.endpoint) as channel:
        channel.unary_unary(PUBLISH, None, None)(request.SerializeToString(), timeout=10)


def _assert_serving(server: ServerProcess) -> None:
    """A fresh gRPC client is served (the server survived whatever the test did to another connection)."""
    with grpc.insecure_channel(server.endpoint) as channel:
        response = controlclient_pb2_grpc.ScsControlStub(channel).ListCaches(
            controlclient_pb2._ListCachesRequest(), timeout=10
        )
    assert CACHE in [cache.cache_name for cache in response.cache]


def _frame(kind: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    """One raw HTTP/2 frame."""
    return len(payload).to_bytes(3, "big") + bytes((kind, flags)) + stream_id.to_bytes(4, "big") + payload


def _items(data: list[bytes]) -> list[pb._SubscriptionItem]:
    return [pb._SubscriptionItem.FromString(message) for message in data]


def _subscriptions(server: ServerProcess) -> float:
    metrics = httpx.get(f"{server.http_url}/metrics", timeout=10).text
    [line] = [line for line in metrics.splitlines() if line.startswith("tidings_subscriptions ")]
    return float(line.split()[1])


def test_h2_unknown_method_is_unimplemented_trailers_only(h2_server: ServerProcess, connect: Connect) -> None:
    client = connect()
    stream = client.wait_end(client.call("/cache_client.pubsub.Pubsub/Nope", b""))

    assert stream.status == b"12"
    assert stream.trailers == []  # Trailers-Only: the status is in the only HEADERS
    assert not stream.data
    assert stream.header(b":status") == b"200"
    assert stream.header(b"grpc-message") == b"Method not found: /cache_client.pubsub.Pubsub/Nope"


def test_h2_compressed_request_is_unimplemented(h2_server: ServerProcess, connect: Connect) -> None:
    client = connect()
    stream_id = client.start_call(PUBLISH)
    client.h2.send_data(stream_id, grpc_frame(b"\x00" * 8, compressed=True), end_stream=True)
    client.flush()

    assert client.wait_end(stream_id).status == b"12"


def test_h2_request_without_te_trailers_is_refused(h2_server: ServerProcess, connect: Connect) -> None:
    client = connect()
    stream = client.wait_end(client.call(LIST_CACHES, b"", extra=((b"content-type", b"application/grpc"),)))

    assert stream.status == b"13"
    assert stream.header(b"grpc-message") == b"te: trailers is required"


def test_h2_non_grpc_content_type_is_415(h2_server: ServerProcess, connect: Connect) -> None:
    client = connect()
    stream = client.wait_end(client.call(LIST_CACHES, b"", extra=((b"content-type", b"text/plain"),)))

    assert stream.header(b":status") == b"415"


def test_h2_grpc_message_is_percent_encoded(h2_server: ServerProcess, connect: Connect) -> None:
    client = connect()
    request = pb._PublishRequest(cache_name="nö-such-cache", topic="t", value=pb._TopicValue(text="v"))
    stream = client.wait_end(client.call(PUBLISH, request.SerializeToString()))

    message = stream.header(b"grpc-message")
    assert message is not None
    assert message.isascii()
    assert b"%C3%B6" in message
    assert "nö-such-cache" in urllib.parse.unquote(message.decode())
    assert stream.status in (b"3", b"5")  # INVALID_ARGUMENT or NOT_FOUND, as the core decides


def test_h2_grpc_timeout_ends_a_stream_with_deadline_exceeded(h2_server: ServerProcess, connect: Connect) -> None:
    client = connect()
    stream_id = client.start_call(SUBSCRIBE, (*GRPC_HEADERS, (b"grpc-timeout", b"300m")))
    client.h2.send_data(stream_id, grpc_frame(_subscribe_request("deadline")), end_stream=True)
    client.flush()

    stream = client.wait_end(stream_id)

    assert stream.status == b"4"
    assert len(_items(stream.messages())) == 1  # the first heartbeat, then the deadline


def test_h2_bad_preface_closes_that_connection_only(h2_server: ServerProcess, connect: Connect) -> None:
    with socket.create_connection((h2_server.host, h2_server.port), timeout=10) as sock:
        # Not HTTP/2, not HTTP/1.1 either (that gets an HTTP/1.1 answer: test_server_logs.py): a TLS ClientHello.
        sock.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk

    # The server's SETTINGS, then a GOAWAY with PROTOCOL_ERROR, then the end of the connection.
    goaway = _frame(0x7, 0x0, 0, (0).to_bytes(4, "big") + int(h2.errors.ErrorCodes.PROTOCOL_ERROR).to_bytes(4, "big"))
    assert received.endswith(goaway)
    _assert_serving(h2_server)


def test_h2_oversized_frame_closes_that_connection_only(h2_server: ServerProcess, connect: Connect) -> None:
    client = connect()
    client.receive()  # the server's SETTINGS
    # A DATA frame header announcing 1 MiB, past the 64 KiB SETTINGS_MAX_FRAME_SIZE the server advertised.
    client.sock.sendall((1 << 20).to_bytes(3, "big") + b"\x00\x00" + (1).to_bytes(4, "big") + b"\x00" * (1 << 20))

    client.receive_until(lambda: client.terminated is not None)

    assert client.terminated is not None
    assert client.terminated.error_code == h2.errors.ErrorCodes.FRAME_SIZE_ERROR
    _assert_serving(h2_server)


def test_h2_oversized_header_block_closes_that_connection_only(h2_server: ServerProcess, connect: Connect) -> None:
    client = connect()
    client.receive()  # the server's SETTINGS
    # A HEADERS frame without END_HEADERS, then CONTINUATIONs of 64 KiB: 8 MiB of header block in all.
    frames = [_frame(0x1, 0x0, 1, b"\x00" * 65536)] + [_frame(0x9, 0x0, 1, b"\x00" * 65536)] * 127
    with contextlib.suppress(OSError):  # the server may close while the block is still being sent
        client.sock.sendall(b"".join(frames))
    client.receive_until(lambda: client.terminated is not None)

    assert client.closed or client.terminated is not None
    _assert_serving(h2_server)


def test_h2_subscriber_with_a_closed_window_waits_then_gets_everything_in_order(
    h2_server: ServerProcess, connect: Connect
) -> None:
    client = connect(initial_window=64)
    stream_id = client.call(SUBSCRIBE, _subscribe_request("window"))
    stream = client.streams[stream_id]
    client.receive_until(lambda: len(stream.messages()) == 1)  # the first heartbeat fits
    for number in range(1, 21):
        _publish(h2_server, "window", f"message {number:02d} " + "x" * 40)

    client.sock.settimeout(1.0)
    with pytest.raises(TimeoutError):
        client.receive_until(lambda: False)
    assert len(stream.data) <= 64  # never more than the window the client gave
    _assert_serving(h2_server)  # a stalled subscriber does not stall the server

    client.sock.settimeout(10.0)
    client.h2.increment_flow_control_window(1 << 20, stream_id)
    client.h2.increment_flow_control_window(1 << 20)
    client.flush()
    client.receive_until(lambda: len(stream.messages()) == 21)

    items = _items(stream.messages())[1:]
    assert [item.item.topic_sequence_number for item in items] == list(range(1, 21))
    assert items[-1].item.value.text.startswith("message 20 ")


def test_h2_ping_flood_is_answered_without_goaway(h2_server: ServerProcess, connect: Connect) -> None:
    client = connect()
    for number in range(5000):
        client.h2.ping(number.to_bytes(8, "big"))
    client.flush()

    client.receive_until(lambda: client.pings_acked == 5000)
    stream = client.wait_end(client.call(LIST_CACHES, b""))

    assert client.pings_acked == 5000
    assert client.terminated is None
    assert stream.status == b"0"


def test_h2_rst_stream_mid_publish_publishes_nothing(h2_server: ServerProcess, connect: Connect) -> None:
    client = connect()
    half = grpc_frame(
        pb._PublishRequest(cache_name=CACHE, topic="reset", value=pb._TopicValue(text="half")).SerializeToString()
    )[:9]
    stream_id = client.start_call(PUBLISH)
    client.h2.send_data(stream_id, half)
    client.h2.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
    client.flush()
    whole = pb._PublishRequest(cache_name=CACHE, topic="reset", value=pb._TopicValue(text="whole"))
    published = client.wait_end(client.call(PUBLISH, whole.SerializeToString()))
    subscriber = client.call(SUBSCRIBE, _subscribe_request("reset", resume_at=1))
    stream = client.streams[subscriber]
    client.receive_until(lambda: any(item.WhichOneof("kind") == "item" for item in _items(stream.messages())))

    assert published.status == b"0"
    [item] = [item.item for item in _items(stream.messages()) if item.WhichOneof("kind") == "item"]
    assert (item.topic_sequence_number, item.value.text) == (1, "whole")


def test_h2_many_streams_on_one_connection(h2_server: ServerProcess, connect: Connect) -> None:
    client = connect()
    streams = [client.streams[client.call(SUBSCRIBE, _subscribe_request("many"))] for _ in range(500)]
    client.receive_until(lambda: all(len(stream.messages()) == 1 for stream in streams))

    _publish(h2_server, "many", "to all")
    client.receive_until(lambda: all(len(stream.messages()) == 2 for stream in streams))

    assert {_items(stream.messages())[1].item.value.text for stream in streams} == {"to all"}
    assert _subscriptions(h2_server) >= 500


def test_h2_1000_connections_opened_and_dropped(h2_server: ServerProcess, connect: Connect) -> None:
    before = _subscriptions(h2_server)
    for _ in range(5):
        clients = [connect() for _ in range(200)]
        for number, client in enumerate(clients):
            if number % 2:
                client.call(SUBSCRIBE, _subscribe_request("dropped"))
        for client in clients:
            client.close()

    deadline = time.monotonic() + 30
    while _subscriptions(h2_server) > before and time.monotonic() < deadline:
        time.sleep(0.1)  # polling the gauge: the server frees each subscription when it sees its connection end
    assert _subscriptions(h2_server) <= before
    _assert_serving(h2_server)


def test_h2_tls_negotiates_h2_by_alpn(start_server: StartServer, tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path)
    server = start_server("--grpc-transport", "h2", "--tls-cert", str(cert), "--tls-key", str(key))
    context = ssl.create_default_context(cafile=str(cert))
    context.set_alpn_protocols(["h2"])
    with (
        socket.create_connection((server.host, server.port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        assert tls.selected_alpn_protocol() == "h2"
    credentials = grpc.ssl_channel_credentials(cert.read_bytes())
    with grpc.secure_channel(server.endpoint, credentials) as channel:
        response = controlclient_pb2_grpc.ScsControlStub(channel).ListCaches(
            controlclient_pb2._ListCachesRequest(), timeout=10
        )
    assert response.cache == []


def test_h2_shutdown_sends_goaway_and_ends_streams_unavailable(start_server: StartServer) -> None:
    server = start_server("--grpc-transport", "h2", "--create-cache", CACHE)
    client = RawH2Client(server)
    try:
        stream = client.streams[client.call(SUBSCRIBE, _subscribe_request("shutdown"))]
        client.receive_until(lambda: len(stream.messages()) == 1)

        assert server.stop() == 0
        client.receive_until(lambda: client.closed)
    finally:
        client.close()

    assert client.terminated is not None
    assert client.terminated.error_code == h2.errors.ErrorCodes.NO_ERROR
    assert stream.status == b"14"


def test_h2_10000_idle_subscriptions_each_get_a_publish(start_server: StartServer) -> None:
    server = start_server(
        "--grpc-transport", "h2", "--create-cache", CACHE, "--max-subscriptions-per-cache", "20000",
        "--heartbeat-interval", "600",  # idle heartbeats would come between the first one and the publish
    )  # fmt: skip
    clients = [RawH2Client(server, timeout=60) for _ in range(20)]
    try:
        streams = [
            client.streams[client.call(SUBSCRIBE, _subscribe_request("idle"))] for client in clients for _ in range(500)
        ]
        for client in clients:
            client.receive_until(lambda client=client: all(len(s.messages()) == 1 for s in client.streams.values()))
        assert _subscriptions(server) == 10_000

        _publish(server, "idle", "to ten thousand")
        for client in clients:
            client.receive_until(lambda client=client: all(len(s.messages()) == 2 for s in client.streams.values()))
    finally:
        for client in clients:
            client.close()

    assert {_items(stream.messages())[1].item.value.text for stream in streams} == {"to ten thousand"}


def test_h2_connection_that_never_sends_the_preface_is_closed(h2_server: ServerProcess) -> None:
    with socket.create_connection((h2_server.host, h2_server.port), timeout=30) as sock:
        started = time.monotonic()
        received = b""
        while chunk := sock.recv(65536):  # the server's SETTINGS, then the end of the connection
            received += chunk
        waited = time.monotonic() - started

    assert received[3:4] == b"\x04"  # a SETTINGS frame, and nothing else was asked for
    assert 9 <= waited < 20  # the handshake timeout is 10 s, checked every second
    _assert_serving(h2_server)


def test_h2_connections_past_max_connections_are_closed_and_request_timeout_applies(tmp_path: Path) -> None:
    server = ServerProcess(
        tmp_path,
        (
            "--grpc-transport", "h2", "--max-connections", "4", "--request-timeout", "1", "--create-cache", CACHE,
            "--max-connections-per-address", "4",  # all come from 127.0.0.1 (the default would be half of 4)
        ),
    ).start()  # fmt: skip
    held = [socket.create_connection((server.host, server.port), timeout=30) for _ in range(4)]
    try:
        with socket.create_connection((server.host, server.port), timeout=30) as refused:
            started = time.monotonic()
            assert refused.recv(65536) == b""  # closed at once, before any SETTINGS
            refused_after = time.monotonic() - started
        started = time.monotonic()
        for sock in held:  # none sends the preface: each is closed at the 1 s --request-timeout
            while sock.recv(65536):
                pass
        closed_after = time.monotonic() - started
    finally:
        for sock in held:
            sock.close()

    assert refused_after < 1
    assert closed_after < 5  # 1 s, checked every second (10 s without the flag)
    assert any("refused 1 gRPC connections: --max-connections 4 are open" in line for line in server.log)
    _assert_serving(server)
    server.stop()


def test_h2_keepalive_closes_a_connection_that_does_not_answer_pings(tmp_path: Path) -> None:
    # Test hook: keepalive ping after 1 s of silence, answer due within 1 s (30 s and 10 s in production).
    server = ServerProcess(
        tmp_path, ("--grpc-transport", "h2", "--create-cache", CACHE), env={"TIDINGS_TEST_H2_KEEPALIVE": "1"}
    ).start()
    silent, answering = RawH2Client(server), RawH2Client(server)
    try:
        answering.receive_until(lambda: answering.pings_received >= 3)
        silent_bytes = b""
        while chunk := silent.sock.recv(65536):  # read, never answer: the server's PING goes unacknowledged
            silent_bytes += chunk
        stream = answering.wait_end(answering.call(LIST_CACHES, b""))
    finally:
        silent.close()
        answering.close()
        server.stop()

    assert b"\x00\x00\x08\x06\x00\x00\x00\x00\x00" in silent_bytes  # it was pinged (PING frame header)
    assert answering.terminated is None
    assert stream.status == b"0"


def test_h2_client_with_a_smaller_hpack_table_gets_valid_header_blocks(h2_server: ServerProcess) -> None:
    # A client that shrinks its HPACK table must see a size update first; h2's decoder refuses blocks without it.
    client = RawH2Client(h2_server, settings={h2.settings.SettingCodes.HEADER_TABLE_SIZE: 0})
    try:
        client.receive_until(lambda: client.h2.decoder.max_allowed_table_size == 0)  # our SETTINGS acknowledged
        first = client.wait_end(client.call(LIST_CACHES, b""))
        second = client.wait_end(client.call(LIST_CACHES, b""))
    finally:
        client.close()

    assert (first.status, second.status) == (b"0", b"0")
    assert first.header(b"content-type") == b"application/grpc"
