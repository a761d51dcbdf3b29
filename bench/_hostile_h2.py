"""Hostile HTTP/2 clients at the reliability review's full size, for ``bench/reliability.py``.

Each shape starts its own ``tidings server`` (h2 transport) and measures it from outside: resident memory from
/proc (sampled every 50 ms, the peak is kept), and a client that keeps publishing meanwhile on a connection of
its own. The attacks use the tests' raw HTTP/2 client (``tests/integration/_h2client.py``) and their frames
(``tests/integration/test_h2_hostile_clients.py``), at the sizes the review used.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import h2.errors
import h2.exceptions
from _proc import cpu_seconds, rss_kib

from tests.integration._h2client import GRPC_HEADERS, RawH2Client
from tests.integration._server import ServerProcess
from tests.integration.test_h2_hostile_clients import (
    CACHE,
    PUBLISH,
    Publisher,
    _amplifying_streams,
    _goaway_codes,
    _publish_request,
    _read_until_closed,
)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
EMPTY_SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
# Loopback addresses: Linux routes all of 127/8 to the loopback interface.
LEGIT_ADDRESS = "127.0.0.2"


@contextlib.contextmanager
def _server(directory: Path, *flags: str) -> Iterator[ServerProcess]:
    process = ServerProcess(directory, ("--grpc-transport", "h2", "--create-cache", CACHE, *flags)).start()
    try:
        yield process
    finally:
        process.stop()


class PeakMemory(threading.Thread):
    """The highest resident size of a process while the block runs, sampled every 50 ms, in MiB."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self._pid = pid
        self._stopping = threading.Event()
        self.before = self.peak = rss_kib(pid) / 1024

    def __enter__(self) -> PeakMemory:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stopping.set()
        self.join(10)

    def run(self) -> None:
        while not self._stopping.wait(0.05):
            self.peak = max(self.peak, rss_kib(self._pid) / 1024)

    @property
    def growth(self) -> float:
        return self.peak - self.before


def _pid(server: ServerProcess) -> int:
    assert server.process is not None
    return server.process.pid


def _publisher_figures(publisher: Publisher) -> dict[str, object]:
    return {
        "publishes": len(publisher.latencies),
        "publish_failures": len(publisher.failures),
        "slowest_publish_ms": round(max(publisher.latencies, default=0.0) * 1000),
    }


def _await_answers(client: RawH2Client, until: float) -> None:
    """Read what the server sends ``client`` until every stream has been answered or reset, the connection
    closed, or the monotonic time ``until``."""
    while not client.closed and any(s.status is None and s.reset is None for s in client.streams.values()):
        client.sock.settimeout(max(0.01, until - time.monotonic()))
        try:
            client.receive()
        except OSError:  # TimeoutError at ``until``, or reset by the server
            return


def unfinished_bodies(
    directory: Path, connections: int, streams: int, request_timeout: float, *flags: str
) -> dict[str, object]:
    """``connections`` connections, each opening ``streams`` publish streams and sending each 60 KiB of a body it
    never finishes (as fast as the windows the server grants allow); with ``--require-auth``, without a token.
    The connections stay open until every stream was answered (at the latest, ``--request-timeout`` after its
    headers)."""
    flags = ("--request-timeout", f"{request_timeout:g}", *flags)
    with _server(directory, *flags) as server:
        clients = [RawH2Client(server, timeout=60) for _ in range(connections)]
        started = time.monotonic()
        try:
            with Publisher(server) as publisher, PeakMemory(_pid(server)) as memory:
                sent = 0
                for client in clients:
                    sent += client.send_bodies(client.start_calls(PUBLISH, streams), 60 * 1024, patience=1.0)
                while_sending = list(publisher.latencies)
                for client in clients:
                    _await_answers(client, until=started + request_timeout + 10)
            answered = time.monotonic() - started
            answers = [(s.status, s.reset) for client in clients for s in client.streams.values()]
        finally:
            for client in clients:
                client.close()
    refused = sum(1 for status, reset in answers if status is None and reset == h2.errors.ErrorCodes.REFUSED_STREAM)
    return {
        "shape": f"{connections} connections x {streams:,} streams, 60 KiB of an unfinished body each",
        "flags": " ".join(flags),
        "rss_before_mib": round(memory.before, 1),
        "rss_growth_mib": round(memory.growth, 1),
        "body_bytes_let_through_mib": round(sent / 2**20, 2),
        "streams_refused": refused,
        "streams_unauthenticated": sum(1 for status, _ in answers if status == b"16"),
        "streams_deadline_exceeded": sum(1 for status, _ in answers if status == b"4"),
        "streams_otherwise_answered": sum(1 for status, _ in answers if status not in (None, b"16", b"4")),
        "streams_unanswered": sum(1 for status, reset in answers if status is None and reset is None),
        "all_answered_after_s": round(answered, 1),
        "slowest_publish_while_sending_ms": round(max(while_sending, default=0.0) * 1000),
        **_publisher_figures(publisher),
    }


def header_amplification(directory: Path, streams: int, references: int) -> dict[str, object]:
    """One connection sending ``streams`` requests, each referring ``references`` times to one 4 KB header
    through the HPACK dynamic table."""
    attack = _amplifying_streams(b"x-big", b"v" * 4000, references, streams)
    with _server(directory) as server:
        cpu_before = cpu_seconds(_pid(server))
        with (
            Publisher(server) as publisher,
            PeakMemory(_pid(server)) as memory,
            socket.create_connection((server.host, server.port), timeout=30) as sock,
        ):
            started = time.monotonic()
            sock.sendall(PREFACE + EMPTY_SETTINGS)
            with contextlib.suppress(OSError):  # the server may close before all of it is sent
                sock.sendall(attack)
            received, closed = _read_until_closed(sock, within=30)
            closed_after = time.monotonic() - started
            publisher.wait_for_publishes(5)
        cpu = cpu_seconds(_pid(server)) - cpu_before
    return {
        "shape": f"{streams:,} streams x {references:,} references to one 4 KB header",
        "flags": "",
        "wire_mib": round(len(attack) / 2**20, 2),
        "rss_before_mib": round(memory.before, 1),
        "rss_growth_mib": round(memory.growth, 1),
        "closed": closed,
        "closed_after_s": round(closed_after, 2),
        "goaway": [h2.errors.ErrorCodes(code).name for code in _goaway_codes(received)],
        "server_cpu_s": round(cpu, 2),
        **_publisher_figures(publisher),
    }


@dataclass
class Attempt:
    """One connection and authenticated publish of the legitimate client."""

    at: float
    took: float
    ok: bool


class LegitClient(threading.Thread):
    """Opens a new connection from ``LEGIT_ADDRESS`` every 100 ms and publishes on it with the admin key."""

    def __init__(self, server: ServerProcess) -> None:
        super().__init__(daemon=True)
        self._server = server
        self._stopping = threading.Event()
        self.attempts: list[Attempt] = []

    def __enter__(self) -> LegitClient:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stopping.set()
        self.join(30)

    def run(self) -> None:
        token = (self._server.data_dir / "admin.key").read_text().strip().encode()
        headers = (*GRPC_HEADERS, (b"authorization", token))
        while not self._stopping.wait(0.1):
            started = time.monotonic()
            ok = False
            try:
                client = RawH2Client(self._server, timeout=10, source=LEGIT_ADDRESS)
                try:
                    ok = client.wait_end(client.call(PUBLISH, _publish_request(), headers)).status == b"0"
                finally:
                    client.close()
            except (OSError, AssertionError, h2.exceptions.H2Error):
                pass  # refused, or closed by the server: a failed attempt
            self.attempts.append(Attempt(started, time.monotonic() - started, ok))

    def wait_until_served(self, within: float = 30.0) -> None:
        """Return once an attempt succeeded (checked every 50 ms)."""
        deadline = time.monotonic() + within
        while not any(attempt.ok for attempt in self.attempts):
            if time.monotonic() > deadline:
                raise TimeoutError("the legitimate client could not publish before the attack")
            time.sleep(0.05)

    def longest_lockout(self) -> float:
        """The longest time from a failed attempt to the next one that succeeded (or to the end)."""
        longest, failing_since = 0.0, None
        for attempt in self.attempts:
            if not attempt.ok and failing_since is None:
                failing_since = attempt.at
            elif attempt.ok and failing_since is not None:
                longest, failing_since = max(longest, attempt.at - failing_since), None
        if failing_since is not None:
            longest = max(longest, self.attempts[-1].at + self.attempts[-1].took - failing_since)
        return longest


def _count(number: int, one: str, many: str) -> str:
    return f"one {one}" if number == 1 else f"{number} {many}"


def _trickle(sockets: list[socket.socket], every: float, within: float) -> dict[socket.socket, float]:
    """Send each socket the next byte of the HTTP/2 preface every ``every`` seconds; when the server closed each
    (seconds from the start), until all are closed or ``within`` seconds passed."""
    started = time.monotonic()
    closed: dict[socket.socket, float] = {}
    sent = dict.fromkeys(sockets, 0)
    with selectors.DefaultSelector() as selector:
        for sock in sockets:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
        next_byte = started
        while len(closed) < len(sockets) and (now := time.monotonic()) - started < within:
            if now >= next_byte:
                for sock in sockets:
                    if sock not in closed and sent[sock] < len(PREFACE):
                        with contextlib.suppress(OSError):  # closed meanwhile: seen by the read below
                            sock.send(PREFACE[sent[sock] : sent[sock] + 1])
                            sent[sock] += 1
                next_byte += every
            for key, _ in selector.select(timeout=max(0.0, min(next_byte - time.monotonic(), 0.5))):
                readable = key.fileobj
                assert isinstance(readable, socket.socket)
                try:
                    data = readable.recv(65536)  # the server's SETTINGS, then its end
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    closed[readable] = time.monotonic() - started
                    selector.unregister(readable)
    return closed


def slowloris(
    directory: Path, connections: int, addresses: int, every: float, request_timeout: float
) -> dict[str, object]:
    """``connections`` connections from ``addresses`` loopback addresses, each sending one byte of the preface
    every ``every`` seconds, against ``--require-auth --max-connections <connections>``, while an authenticated
    client connects and publishes every 100 ms from another address."""
    flags = ("--require-auth", "--max-connections", str(connections), "--request-timeout", f"{request_timeout:g}")
    with _server(directory, *flags) as server, LegitClient(server) as legit:
        legit.wait_until_served()
        sources = [f"127.0.0.{10 + index % addresses}" for index in range(connections)]
        with PeakMemory(_pid(server)) as memory:
            sockets = [socket.create_connection((server.host, server.port), 10, (s, 0)) for s in sources]
            try:
                closed = _trickle(sockets, every, within=max(60.0, 4 * request_timeout))
            finally:
                for sock in sockets:
                    sock.close()
        time.sleep(1.0)  # the legitimate client goes on for a second after the attack: part of what is measured
    refused_at_once = sorted(t for t in closed.values() if t < 0.5)
    held = sorted(t for t in closed.values() if t >= 0.5)
    attempts = legit.attempts
    return {
        "shape": f"{connections} slowloris connections from {_count(addresses, 'address', 'addresses')}, a preface "
        f"byte every {every:g} s",
        "flags": " ".join(flags),
        "rss_growth_mib": round(memory.growth, 1),
        "refused_at_once": len(refused_at_once),
        "held": len(held),
        "never_closed": connections - len(closed),
        "held_closed_after_s": [round(held[0], 1), round(held[-1], 1)] if held else [],
        "legit_attempts": len(attempts),
        "legit_failed": sum(1 for a in attempts if not a.ok),
        "legit_longest_lockout_s": round(legit.longest_lockout(), 2),
        "slowest_publish_ms": round(max((a.took for a in attempts if a.ok), default=0.0) * 1000),
    }
