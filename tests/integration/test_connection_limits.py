"""Idle and half-sent connections, the connection cap and the open-files limit (issue 11, item 1).

Each server here starts with a small RLIMIT_NOFILE, so that the connections a test opens would exhaust it
without the bounds (PROTOCOL.md *HTTP safety*).
"""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import httpx
import pytest
from momento_wire_types import cachepubsub_pb2, cachepubsub_pb2_grpc

from tests.integration._server import ServerProcess
from tests.integration._tls import self_signed_certificate

# With 256 descriptors a transport may hold (256 - 64) // 2 = 96 connections.
OPEN_FILES = 256
# More idle connections than the server has descriptors.
FLOOD = 300
IDLE_TIMEOUT = 2
REQUEST_TIMEOUT = 3.0
# How long past a deadline the server may take to act on it (the machine may be busy).
SLACK = 6.0


@pytest.fixture
def small_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server limited to 256 open files (soft and hard: it cannot raise them) with short deadlines."""
    process = ServerProcess(
        tmp_path / "data",
        (
            "--create-cache", "c",
            "--http-idle-timeout", str(IDLE_TIMEOUT),
            "--request-timeout", str(REQUEST_TIMEOUT),
        ),
        open_files=(OPEN_FILES, OPEN_FILES),
    ).start()  # fmt: skip
    yield process
    process.stop()


@contextlib.contextmanager
def idle_connections(port: int, count: int) -> Iterator[list[socket.socket]]:
    """``count`` TCP connections to ``port`` on loopback that send nothing."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sockets.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


def _publish(
    server: ServerProcess, timeout: float = 10.0, *, wait_for_ready: bool = False, certificate: Path | None = None
) -> None:
    request = cachepubsub_pb2._PublishRequest(cache_name="c", topic="t", value=cachepubsub_pb2._TopicValue(text="v"))
    if certificate is None:
        channel = grpc.insecure_channel(server.endpoint)
    else:
        credentials = grpc.ssl_channel_credentials(root_certificates=certificate.read_bytes())
        channel = grpc.secure_channel(server.endpoint, credentials)
    with channel:
        cachepubsub_pb2_grpc.PubsubStub(channel).Publish(request, timeout=timeout, wait_for_ready=wait_for_ready)


def _closed_by_server(sock: socket.socket, within: float) -> bool:
    """Whether the server closes ``sock`` within ``within`` seconds (whatever it sent first is skipped)."""
    sock.settimeout(within)
    deadline = time.monotonic() + within
    try:
        while time.monotonic() < deadline:
            if not sock.recv(65536):
                return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return False


def test_server_raises_its_soft_open_files_limit_to_the_hard_limit(tmp_path: Path) -> None:
    process = ServerProcess(tmp_path / "data", (), open_files=(OPEN_FILES, 1024)).start()
    try:
        limits = Path(f"/proc/{process.process.pid}/limits").read_text()  # type: ignore[union-attr]
    finally:
        process.stop()

    soft, hard = re.search(r"Max open files\s+(\d+)\s+(\d+)", limits).groups()  # type: ignore[union-attr]
    assert (soft, hard) == ("1024", "1024")
    log = "".join(process.log)
    assert "raised the open-files limit (RLIMIT_NOFILE) from 256 to 1024" in log
    assert "at most 448 connections per transport (open-files limit 1024)" in log


def test_idle_http_connections_do_not_starve_grpc_or_new_http_requests(small_server: ServerProcess) -> None:
    with idle_connections(small_server.http_port, FLOOD) as sockets:
        with httpx.Client(base_url=small_server.http_url, timeout=10) as http:
            refused = http.get("/health")  # HTTP is full (until the idle timeout): refused, readably
        _publish(small_server)  # gRPC still answers at once
        # Every idle connection is closed by the server: at its idle timeout, or at once with a 503.
        closed = [_closed_by_server(sock, IDLE_TIMEOUT + SLACK) for sock in sockets]
        with httpx.Client(base_url=small_server.http_url, timeout=10) as http:
            served = http.get("/health")

    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "unavailable"
    assert refused.headers["retry-after"] == "1"
    assert all(closed), f"{closed.count(False)} idle connections still open"
    assert served.status_code == 200
    assert "refusing new ones with 503" in "".join(small_server.log)


def test_idle_grpc_connections_do_not_starve_http_and_are_closed(small_server: ServerProcess) -> None:
    with idle_connections(small_server.port, FLOOD) as sockets:
        with httpx.Client(base_url=small_server.http_url, timeout=10) as http:
            health = http.get("/health")
        # Connections that never send the HTTP/2 preface are closed at the request timeout (or at once when full).
        closed = [_closed_by_server(sock, REQUEST_TIMEOUT + SLACK) for sock in sockets]
        _publish(small_server, wait_for_ready=True)

    assert health.status_code == 200
    assert all(closed), f"{closed.count(False)} idle gRPC connections still open"


def test_http_connection_that_never_sends_is_closed_at_the_idle_timeout(small_server: ServerProcess) -> None:
    with idle_connections(small_server.http_port, 1) as (sock,):
        started = time.monotonic()
        closed = _closed_by_server(sock, IDLE_TIMEOUT + SLACK)
        elapsed = time.monotonic() - started

    assert closed
    assert elapsed >= IDLE_TIMEOUT * 0.9


def test_http_request_sent_byte_by_byte_is_cut_off_at_the_request_timeout(small_server: ServerProcess) -> None:
    with idle_connections(small_server.http_port, 1) as (sock,):
        started = time.monotonic()
        sock.sendall(b"GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\n")
        closed = False
        # One header byte every 0.2 s: never idle, never done.
        while time.monotonic() - started < REQUEST_TIMEOUT + SLACK:
            try:
                sock.sendall(b"x")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            if _closed_by_server(sock, 0.2):
                closed = True
                break
        elapsed = time.monotonic() - started

    assert closed, "the server kept a half-sent request open"
    assert elapsed >= REQUEST_TIMEOUT * 0.9


def test_slow_request_body_is_cut_off_at_the_request_timeout(small_server: ServerProcess) -> None:
    with idle_connections(small_server.http_port, 1) as (sock,):
        started = time.monotonic()
        sock.sendall(
            b"POST /topics/c/t HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: text/plain\r\ncontent-length: 100\r\n\r\n"
        )
        closed = False
        while time.monotonic() - started < REQUEST_TIMEOUT + SLACK:
            try:
                sock.sendall(b"x")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            if _closed_by_server(sock, 0.2):
                closed = True
                break

    assert closed, "the server kept a half-sent body open"


def test_long_poll_outlasts_the_idle_and_request_timeouts(small_server: ServerProcess) -> None:
    with httpx.Client(base_url=small_server.http_url, timeout=30) as http, ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(http.get, "/topics/c/waited", params={"sequence_number": 1})
        time.sleep(REQUEST_TIMEOUT + IDLE_TIMEOUT)  # the request is in; the wait is the server's, not the client's
        published = http.post("/topics/c/waited", content="late", headers={"content-type": "text/plain"})
        answer = waiting.result(30)

    assert published.status_code == 204
    assert answer.status_code == 200
    assert answer.json()["items"][0]["item"]["value"] == {"text": "late"}


def test_idle_connections_that_never_start_tls_are_closed_and_do_not_starve_grpc(tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path)
    server = ServerProcess(
        tmp_path / "data",
        (
            "--create-cache", "c",
            "--tls-cert", str(cert), "--tls-key", str(key),
            "--request-timeout", str(REQUEST_TIMEOUT),
        ),
        open_files=(OPEN_FILES, OPEN_FILES),
    ).start()  # fmt: skip
    try:
        with idle_connections(server.http_port, FLOOD) as sockets:
            _publish(server, certificate=cert)
            # Without a handshake within the request timeout (or at once, when full), connections are closed.
            closed = [_closed_by_server(sock, REQUEST_TIMEOUT + SLACK) for sock in sockets]
        trust = ssl.create_default_context(cafile=str(cert))
        deadline = time.monotonic() + 10  # the server may still be closing the flood's connections when we ask
        with httpx.Client(base_url=f"https://127.0.0.1:{server.http_port}", verify=trust, timeout=10) as https:
            while True:
                try:
                    served = https.get("/health")
                    break
                except httpx.ConnectError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
    finally:
        server.stop()

    assert all(closed), f"{closed.count(False)} connections without a TLS handshake still open"
    assert served.status_code == 200
