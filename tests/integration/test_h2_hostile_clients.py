"""Hostile clients on the h2 gRPC transport (issue 17, items 2 to 4): what one connection or one address can
make the server hold before authentication, header compression used as an amplifier, and slow or idle
connections that would keep the connection slots of everyone else.

Memory is the server process's resident size (/proc/<pid>/status VmRSS). While an attack runs, a `Publisher`
on its own connection publishes every 20 ms: every publish must succeed, promptly.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import grpc
import h2.errors
import httpx
import pytest
from hpack.hpack import encode_integer
from momento import CredentialProvider, TopicClientAsync, TopicConfigurations
from momento.responses import TopicPublish
from momento_wire_types import cachepubsub_pb2 as pb

from tests.integration._h2client import GRPC_HEADERS, RawH2Client, grpc_frame
from tests.integration._server import ServerProcess
from tests.integration.test_request_memory import resident_mib
from tidings import TopicClientAsync as OurTopicClientAsync
from tidings import TopicPublish as OurTopicPublish
from tidings.server.grpc._h2._limits import MAX_HEADER_LIST_SIZE, request_budget
from tidings.server.grpc.server import receive_limit

StartServer = Callable[..., ServerProcess]

PUBLISH = "/cache_client.pubsub.Pubsub/Publish"
SUBSCRIBE = "/cache_client.pubsub.Pubsub/Subscribe"
LIST_CACHES = "/control_client.ScsControl/ListCaches"
CACHE = "hostile"
# A second loopback address: Linux routes all of 127/8 to the loopback interface.
OTHER_ADDRESS = "127.0.0.2"


@pytest.fixture
def start(tmp_path: Path) -> Iterator[StartServer]:
    """Start an h2-transport server with ``CACHE`` and extra flags (stopped at teardown)."""
    started: list[ServerProcess] = []

    def start_server(*args: str) -> ServerProcess:
        process = ServerProcess(
            tmp_path / f"data{len(started)}", ("--grpc-transport", "h2", "--create-cache", CACHE, *args)
        ).start()
        started.append(process)
        return process

    yield start_server
    for process in started:
        process.stop()


def _publish_request(text: str = "v") -> bytes:
    return pb._PublishRequest(cache_name=CACHE, topic="t", value=pb._TopicValue(text=text)).SerializeToString()


class Publisher(threading.Thread):
    """Publishes every 20 ms on a connection of its own until stopped; what each publish took, and failures."""

    def __init__(self, server: ServerProcess) -> None:
        super().__init__(daemon=True)
        self._endpoint = server.endpoint
        # With --require-auth, the admin key (written to the data directory at start).
        admin_key = server.data_dir / "admin.key"
        self._metadata = (("authorization", admin_key.read_text().strip()),) if "--require-auth" in server.args else ()
        self._stopping = threading.Event()
        self._ready = threading.Event()
        self.latencies: list[float] = []
        self.failures: list[str] = []

    def __enter__(self) -> Publisher:
        self.start()
        assert self._ready.wait(30), "the publisher could not publish before the attack"
        return self

    def __exit__(self, *_: object) -> None:
        self._stopping.set()
        self.join(30)

    def run(self) -> None:
        with grpc.insecure_channel(self._endpoint) as channel:
            publish = channel.unary_unary(PUBLISH, None, None)
            publish(_publish_request(), timeout=30, metadata=self._metadata)
            self._ready.set()
            while not self._stopping.wait(0.02):
                started = time.monotonic()
                try:
                    publish(_publish_request(), timeout=10, metadata=self._metadata)
                except grpc.RpcError as error:
                    self.failures.append(str(error))
                else:
                    self.latencies.append(time.monotonic() - started)

    def wait_for_publishes(self, count: int, timeout: float = 30) -> None:
        """Return once ``count`` more publishes succeeded (or ``timeout`` seconds passed)."""
        wanted = len(self.latencies) + count
        deadline = time.monotonic() + timeout
        while len(self.latencies) < wanted and not self.failures and time.monotonic() < deadline:
            time.sleep(0.01)  # polling a counter the thread appends to

    def assert_served(self, within: float) -> None:
        """Every publish succeeded, the slowest within ``within`` seconds."""
        assert not self.failures, self.failures[:3]
        assert len(self.latencies) >= 5, "the publisher was starved"
        slowest = max(self.latencies)
        assert slowest < within, (
            f"slowest publish {slowest * 1000:.0f} ms, median {statistics.median(self.latencies):.3f} s"
        )


def _frames(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """(type, stream id, payload) of each whole HTTP/2 frame in ``data``."""
    while len(data) >= 9:
        length = int.from_bytes(data[:3], "big")
        if len(data) < 9 + length:
            return
        yield data[3], int.from_bytes(data[5:9], "big") & 0x7FFFFFFF, data[9 : 9 + length]
        data = data[9 + length :]


def _goaway_codes(received: bytes) -> list[int]:
    return [int.from_bytes(payload[4:8], "big") for kind, _, payload in _frames(received) if kind == 0x7]


def _read_until_closed(sock: socket.socket, within: float) -> tuple[bytes, bool]:
    """What the server sends on ``sock`` until it closes it (True), or ``within`` seconds pass (False)."""
    received = b""
    deadline = time.monotonic() + within
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            chunk = sock.recv(1 << 16)
        except TimeoutError:
            break
        except ConnectionResetError:
            return received, True
        if not chunk:
            return received, True
        received += chunk
    return received, False


# --- 17.2: unfinished requests ------------------------------------------------------------------------------


def test_h2_settings_advertise_the_limits_and_the_connection_window_is_the_request_budget(
    start: StartServer,
) -> None:
    server = start()
    client = RawH2Client(server)
    try:
        client.receive_until(lambda: client.h2.outbound_flow_control_window > 65_535)
        settings = client.h2.remote_settings
        window = client.h2.outbound_flow_control_window
    finally:
        client.close()

    largest_request = receive_limit(4096)  # --max-message-size 4 KiB and the envelope
    assert settings.max_concurrent_streams == 10_000
    assert settings.max_header_list_size == MAX_HEADER_LIST_SIZE
    assert settings.initial_window_size == largest_request + 5 + 1  # a whole request, and a byte to see it is over
    assert window == request_budget(largest_request)  # before: 16 MiB, whatever the requests


@pytest.mark.parametrize(
    ("flags", "token"),
    [((), None), (("--require-auth",), b"not a token")],
    ids=["anonymous", "bad-token-with-require-auth"],
)
def test_h2_thousands_of_unfinished_bodies_keep_memory_bounded_and_others_publishing(
    start: StartServer, flags: tuple[str, ...], token: bytes | None
) -> None:
    # The review's shape: streams each sent 60 KiB of a body they never finish, on one connection and on two
    # (10,000 streams there, 4,000 here: each connection would hold 234 MiB without the bounds, instead of 586).
    server = start(*flags)
    headers = GRPC_HEADERS if token is None else (*GRPC_HEADERS, (b"authorization", token))
    clients = [RawH2Client(server, timeout=30) for _ in range(2)]
    before = resident_mib(server)
    try:
        with Publisher(server) as publisher:
            sent = []
            for client in clients:
                stream_ids = client.start_calls(PUBLISH, 4000, headers)
                sent.append(client.send_bodies(stream_ids, 60 * 1024, patience=1.0))
            grown = resident_mib(server) - before  # the attack's connections still open
        answered = [stream for client in clients for stream in client.streams.values() if stream.status]
    finally:
        for client in clients:
            client.close()

    assert grown < 32, f"resident size grew by {grown:.0f} MiB (sent {[s >> 20 for s in sent]} MiB)"
    publisher.assert_served(within=2.0)
    if token is not None:  # each stream answered at its headers, before any of its body was taken
        assert {stream.status for stream in answered} == {b"16"}


def test_h2_request_without_a_valid_token_is_answered_at_its_headers(start: StartServer) -> None:
    server = start("--require-auth")
    client = RawH2Client(server, timeout=5)
    try:
        missing = client.start_call(PUBLISH)  # headers only: no body, no end of stream
        bad = client.start_call(PUBLISH, (*GRPC_HEADERS, (b"authorization", b"Bearer nope")))
        client.receive_until(lambda: client.streams[missing].status and client.streams[bad].status)
    finally:
        client.close()

    assert client.streams[missing].status == b"16"
    assert (
        client.streams[missing].header(b"grpc-message") == b"this server requires a token in the authorization header"
    )
    assert client.streams[bad].status == b"16"
    # The client is told to stop sending the body: nothing of it will be read.
    assert client.streams[missing].reset == h2.errors.ErrorCodes.NO_ERROR


def test_h2_request_body_must_arrive_within_the_request_timeout(start: StartServer) -> None:
    server = start("--request-timeout", "1")
    client = RawH2Client(server)
    try:
        slow = client.start_call(PUBLISH)
        client.h2.send_data(slow, grpc_frame(_publish_request())[:9])  # and the rest never comes
        client.flush()
        started = time.monotonic()
        client.receive_until(lambda: client.streams[slow].status is not None)
        waited = time.monotonic() - started
        whole = client.wait_end(client.call(PUBLISH, _publish_request()))
    finally:
        client.close()

    assert client.streams[slow].status == b"4"  # DEADLINE_EXCEEDED
    assert waited < 4  # 1 s, checked every second
    assert whole.status == b"0"  # the connection goes on serving


def test_h2_streams_past_the_advertised_limit_close_that_connection(start: StartServer) -> None:
    server = start("--max-streams-per-connection", "50")
    hostile = RawH2Client(server)
    try:
        hostile.receive_until(lambda: hostile.h2.remote_settings.max_concurrent_streams == 50)
        subscription = pb._SubscriptionRequest(cache_name=CACHE, topic="t").SerializeToString()
        for _ in range(51):  # subscriptions stay open: the 51st is one too many
            hostile.call(SUBSCRIBE, subscription)
        hostile.receive_until(lambda: hostile.terminated is not None)
        other = RawH2Client(server)
        listed = other.wait_end(other.call(LIST_CACHES, b""))
        other.close()
    finally:
        hostile.close()

    assert hostile.terminated is not None
    assert hostile.terminated.error_code == h2.errors.ErrorCodes.PROTOCOL_ERROR
    assert listed.status == b"0"
    server.wait_for_log("closed a gRPC connection from 127.0.0.1 that opened more than 50 streams")


# --- 17.3: header compression -------------------------------------------------------------------------------


def _hpack_integer(value: int, prefix_bits: int, flags: int) -> bytes:
    """An HPACK integer (RFC 7541 5.1, ``hpack``'s encoder) with ``flags`` in the bits above its prefix."""
    encoded = encode_integer(value, prefix_bits)
    encoded[0] |= flags
    return bytes(encoded)


def _literal(name: bytes, value: bytes, indexed: bool = False) -> bytes:
    """A literal header field with a new name, added to the dynamic table or not (RFC 7541 6.2)."""
    flags, prefix = (0x40, 6) if indexed else (0x00, 4)
    return (
        _hpack_integer(0, prefix, flags)
        + _hpack_integer(len(name), 7, 0)
        + name
        + _hpack_integer(len(value), 7, 0)
        + value
    )


_REQUEST_BLOCK = (
    b"\x83\x86"  # :method POST, :scheme http (static table)
    + _literal(b":path", PUBLISH.encode())
    + _literal(b":authority", b"t")
    + _literal(b"content-type", b"application/grpc")
    + _literal(b"te", b"trailers")
)


def _amplifying_streams(name: bytes, value: bytes, references: int, streams: int) -> bytes:
    """HEADERS frames of ``streams`` requests, each referring ``references`` times to one header: put in the
    HPACK dynamic table by the first request (index 62), then one byte per reference."""
    frames = bytearray()
    for number in range(streams):
        block = _REQUEST_BLOCK + (_literal(name, value, indexed=True) if number == 0 else b"\xbe")
        block += b"\xbe" * (references - 1)
        frames += len(block).to_bytes(3, "big") + b"\x01\x04" + (2 * number + 1).to_bytes(4, "big") + block
    return bytes(frames)


@pytest.mark.parametrize(
    ("name", "value", "references"),
    [(b"x-big", b"v" * 4000, 1000), (b"x", b"y", 1800)],
    ids=["review-4kb-header-x1000", "small-header-x1800"],
)
def test_h2_header_compression_amplification_costs_bounded_memory_and_no_latency(
    start: StartServer, name: bytes, value: bytes, references: int
) -> None:
    # The review's shape: 2,000 streams each referring to a 4 KB header 1,000 times (2.2 MB on the wire, 4 MB of
    # headers per request); and references to a small header, the dearest to decode, under the 64 KiB a header
    # list may decode to (so that each is refused on its own stream, RESOURCE_EXHAUSTED, not with the connection).
    server = start()
    attack = _amplifying_streams(name, value, references, 2000)
    before = resident_mib(server)
    with Publisher(server) as publisher, socket.create_connection((server.host, server.port), timeout=30) as sock:
        sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")  # preface, SETTINGS
        with contextlib.suppress(OSError):  # the server may close before all of it is sent
            sock.sendall(attack)
        received, closed = _read_until_closed(sock, within=20)
        grown = resident_mib(server) - before
        publisher.wait_for_publishes(5)

    assert closed
    assert _goaway_codes(received) == [h2.errors.ErrorCodes.ENHANCE_YOUR_CALM]
    assert grown < 16, f"resident size grew by {grown:.0f} MiB"  # before: +97 MiB
    publisher.assert_served(within=0.5)  # before: a publish took 1,029 ms


def test_h2_header_list_over_the_limit_is_refused_on_its_stream(start: StartServer) -> None:
    server = start()
    client = RawH2Client(server)
    try:
        oversized = client.wait_end(client.call(LIST_CACHES, b"", (*GRPC_HEADERS, (b"x-pad", b"p" * 20_000))))
        after = client.wait_end(client.call(LIST_CACHES, b""))
    finally:
        client.close()

    assert oversized.status == b"8"  # RESOURCE_EXHAUSTED
    assert oversized.header(b"err") == b"request_size_limit_exceeded"
    assert after.status == b"0"  # same connection


def test_h2_header_list_past_what_is_decoded_closes_that_connection(start: StartServer) -> None:
    server = start()
    client = RawH2Client(server)
    try:
        client.call(LIST_CACHES, b"", (*GRPC_HEADERS, (b"x-pad", b"p" * 100_000)))
        client.receive_until(lambda: client.terminated is not None)
    finally:
        client.close()

    assert client.terminated is not None
    assert client.terminated.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM


def _rst_stream_codes(received: bytes) -> list[int]:
    return [int.from_bytes(payload[:4], "big") for kind, _, payload in _frames(received) if kind == 0x3]


def test_h2_headers_of_unfinished_requests_are_bounded(start: StartServer) -> None:
    # 600 requests whose headers (15 KB each, literal: nothing shared through HPACK) arrive and whose bodies never
    # do: 9 MB the server would hold; past 8 MiB of them, new streams are refused.
    server = start()
    before = resident_mib(server)
    frames = bytearray()
    for number in range(600):
        block = _REQUEST_BLOCK + _literal(b"x-pad", b"%05d" % number + b"p" * 15_000)
        frames += len(block).to_bytes(3, "big") + b"\x01\x04" + (2 * number + 1).to_bytes(4, "big") + block
    with Publisher(server) as publisher, socket.create_connection((server.host, server.port), timeout=30) as sock:
        sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00" + frames)
        received, _ = _read_until_closed(sock, within=2)
        grown = resident_mib(server) - before
        publisher.wait_for_publishes(5)

    refused = _rst_stream_codes(received).count(h2.errors.ErrorCodes.REFUSED_STREAM)
    assert 50 < refused < 150, refused  # about 90: each holds 15 KB of headers and 1 KiB
    assert grown < 24, f"resident size grew by {grown:.0f} MiB"
    publisher.assert_served(within=1.0)


# --- 17.4: slow and idle connections, connections per address -----------------------------------------------


@pytest.mark.parametrize("trickle", [False, True], ids=["one-byte-then-silence", "a-byte-every-300ms"])
def test_h2_preface_must_arrive_whole_within_the_request_timeout(start: StartServer, trickle: bool) -> None:
    server = start("--request-timeout", "1")
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        started = time.monotonic()
        sock.sendall(preface[:1])
        closed = False
        for byte in preface[1:] if trickle else ():
            _, closed = _read_until_closed(sock, within=0.3)
            if closed:
                break
            try:
                sock.sendall(bytes((byte,)))
            except OSError:
                closed = True
                break
        if not closed:
            _, closed = _read_until_closed(sock, within=6)
        waited = time.monotonic() - started

    assert closed  # before: one byte counted as the preface; closed at 41 s, or never when trickled
    assert waited < 4  # 1 s, checked every second


def test_h2_connection_without_calls_goes_away_after_the_idle_timeout(start: StartServer) -> None:
    server = start("--grpc-idle-timeout", "1")
    idle, subscriber = RawH2Client(server), RawH2Client(server)
    subscription = pb._SubscriptionRequest(cache_name=CACHE, topic="t").SerializeToString()
    try:
        stream = subscriber.streams[subscriber.call(SUBSCRIBE, subscription)]
        subscriber.receive_until(lambda: len(stream.messages()) == 1)
        started = time.monotonic()
        idle.receive_until(lambda: idle.closed)  # GOAWAY, then the end of the connection
        idle_for = time.monotonic() - started
        # The subscriber's connection has a call: it outlived the idle timeout, and still delivers.
        publisher = RawH2Client(server)
        published = publisher.wait_end(publisher.call(PUBLISH, _publish_request("still here")))
        publisher.close()
        subscriber.receive_until(lambda: len(stream.messages()) == 2)
    finally:
        idle.close()
        subscriber.close()

    assert idle.terminated is not None
    assert idle.terminated.error_code == h2.errors.ErrorCodes.NO_ERROR
    assert idle_for < 5  # 1 s, checked every second, then a grace of 2 s for the client to leave
    assert published.status == b"0"
    assert subscriber.terminated is None


def _official_client(server: ServerProcess) -> TopicClientAsync:
    config = TopicConfigurations.Default.v1().with_client_timeout(timedelta(seconds=30))
    return TopicClientAsync(config, CredentialProvider.for_momento_local(server.host, server.port))


async def test_sdk_clients_publish_again_after_an_idle_connection_went_away(start: StartServer) -> None:
    server = start("--grpc-idle-timeout", "1")
    async with _official_client(server) as official, OurTopicClientAsync(server.endpoint, timeout=30) as ours:
        first = (await official.publish(CACHE, "t", "one"), await ours.publish(CACHE, "t", "one"))
        # What is tested is time itself: idle for longer than the timeout and its 2 s grace, checked every second.
        await asyncio.sleep(5)
        second = (await official.publish(CACHE, "t", "two"), await ours.publish(CACHE, "t", "two"))

    assert all(isinstance(response, TopicPublish.Success) for response in (first[0], second[0])), (first, second)
    assert all(isinstance(response, OurTopicPublish.Success) for response in (first[1], second[1])), (first, second)


def test_h2_connections_per_address_are_capped(start: StartServer) -> None:
    server = start("--max-connections", "10", "--max-connections-per-address", "3")
    held = [socket.create_connection((server.host, server.port), timeout=10) for _ in range(3)]
    try:
        with socket.create_connection((server.host, server.port), timeout=10) as refused:
            assert refused.recv(65536) == b""  # closed at once, before any SETTINGS
        other = RawH2Client(server, source=OTHER_ADDRESS)
        listed = other.wait_end(other.call(LIST_CACHES, b""))
        other.close()
    finally:
        for sock in held:
            sock.close()

    assert listed.status == b"0"
    server.wait_for_log(r"refused 1 gRPC connections: --max-connections-per-address 3 are open from 127\.0\.0\.1")


def test_h2_connections_per_address_default_to_half_of_max_connections(start: StartServer) -> None:
    server = start("--max-connections", "4")
    held = [socket.create_connection((server.host, server.port), timeout=10) for _ in range(2)]
    try:
        with socket.create_connection((server.host, server.port), timeout=10) as refused:
            closed_at_once = refused.recv(65536) == b""
    finally:
        for sock in held:
            sock.close()

    assert closed_at_once


def test_http_connections_per_address_are_capped(start: StartServer) -> None:
    server = start("--max-connections", "10", "--max-connections-per-address", "3")
    held = [socket.create_connection((server.host, server.http_port), timeout=10) for _ in range(3)]
    try:
        refused = httpx.get(f"{server.http_url}/health", timeout=10)
        transport = httpx.HTTPTransport(local_address=OTHER_ADDRESS)
        with httpx.Client(transport=transport, timeout=10) as other:
            served = other.get(f"{server.http_url}/health")
    finally:
        for sock in held:
            sock.close()

    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert served.status_code == 200
    server.wait_for_log(r"HTTP: 127\.0\.0\.1 holds --max-connections-per-address 3 connections")


def test_grpcio_transport_advertises_the_stream_and_header_limits(tmp_path: Path) -> None:
    server = ServerProcess(
        tmp_path, ("--grpc-transport", "grpcio", "--max-streams-per-connection", "123", "--grpc-idle-timeout", "1")
    ).start()
    client = RawH2Client(server)
    try:
        client.receive_until(lambda: client.h2.remote_settings.max_concurrent_streams == 123)
        header_list = client.h2.remote_settings.max_header_list_size
        client.receive_until(lambda: client.closed or client.terminated is not None)  # idle: GOAWAY
    finally:
        client.close()
        server.stop()

    assert header_list == MAX_HEADER_LIST_SIZE
    assert client.terminated is not None
