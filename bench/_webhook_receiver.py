"""The webhook benchmark's do-nothing receiver: HTTP/1.1 on an asyncio Protocol (uvloop), in its own process.

It costs little per request, so the benchmark measures the sender. ``POST /hook/...`` reads the JSON event and
checks, per path (one path per webhook), that topic sequence numbers arrive one after another: duplicates
(a number again or lower) and gaps (numbers skipped) are counted; ``POST /floor/...`` (the httpx loops) is only
counted. Both answer 204 and keep the connection.

``GET /hold`` makes POSTs wait for their answer until ``GET /release`` (which answers ``{"held", "released"}``,
the time it released them). ``GET /count?at_least=N`` answers ``{"count"}`` once N hook POSTs arrived;
``GET /state`` answers
``{"count", "first", "last", "paths": {path: [first, last, count, duplicates, gaps, arrived]}}`` (``first``
and ``last``: `time.monotonic` of the first and last hook POST, a clock every process on the machine shares;
``arrived``: of the path's first POST); ``GET /state?times`` adds every hook POST's time.

Only requests framed by Content-Length are understood (both clients send them).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from urllib.parse import parse_qs, urlsplit

NO_CONTENT = b"HTTP/1.1 204 No Content\r\n\r\n"


class Tally:
    """What arrived, per path."""

    def __init__(self) -> None:
        self.count = 0
        self.floor = 0
        self.first = 0.0
        self.last = 0.0
        self.paths: dict[str, list[float]] = {}
        self.times: list[float] = []
        self.waiters: list[tuple[int, asyncio.Future[None]]] = []
        self.held: list[ReceiverProtocol] | None = None  # while held: the connections whose answer waits
        self.released = 0.0

    def hook(self, path: str, body: bytes) -> None:
        sequence = json.loads(body)["topic_sequence_number"]
        self.last = time.monotonic()
        if not self.count:
            self.first = self.last
        self.count += 1
        self.times.append(self.last)
        seen = self.paths.get(path)
        if seen is None:
            self.paths[path] = [sequence, sequence, 1, 0, 0, self.last]
        else:
            seen[2] += 1
            if sequence <= seen[1]:
                seen[3] += 1
            else:
                seen[4] += sequence - seen[1] - 1
                seen[1] = sequence
        if self.waiters:
            for waiter in [waiter for waiter in self.waiters if waiter[0] <= self.count]:
                self.waiters.remove(waiter)
                waiter[1].set_result(None)

    def state(self, times: bool) -> dict[str, object]:
        state = {"count": self.count, "first": self.first, "last": self.last, "paths": self.paths}
        return {**state, "times": self.times} if times else state


class ReceiverProtocol(asyncio.Protocol):
    def __init__(self, tally: Tally) -> None:
        self.tally = tally
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end]
            lower = head.lower()
            at = lower.find(b"\r\ncontent-length:")
            line_end = lower.find(b"\r\n", at + 2)
            length = int(lower[at + 17 : line_end if line_end > 0 else None]) if at >= 0 else 0
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            method, target = head.split(b" ", 2)[:2]
            self.request(method, target.decode(), body)

    def request(self, method: bytes, target: str, body: bytes) -> None:
        assert self.transport is not None
        if method == b"POST":
            if target.startswith("/hook/"):
                self.tally.hook(target, body)
            else:
                self.tally.floor += 1
            if self.tally.held is not None:
                self.tally.held.append(self)
            else:
                self.transport.write(NO_CONTENT)
            return
        parts = urlsplit(target)
        if parts.path == "/hold":
            self.tally.held = []
            self.answer({})
        elif parts.path == "/release":
            held, self.tally.held = self.tally.held or [], None
            self.tally.released = time.monotonic()
            for protocol in held:
                if protocol.transport is not None:
                    protocol.transport.write(NO_CONTENT)
            self.answer({"held": len(held), "released": self.tally.released})
        elif parts.path == "/state":
            self.answer(self.tally.state("times" in parts.query))
        else:
            self.count(parts.query)

    def count(self, query: str) -> None:
        at_least = int(parse_qs(query).get("at_least", ["0"])[0])
        if self.tally.count >= at_least:
            self.answer({"count": self.tally.count})
            return
        arrived = asyncio.get_running_loop().create_future()
        arrived.add_done_callback(lambda _: self.answer({"count": self.tally.count}))
        self.tally.waiters.append((at_least, arrived))

    def answer(self, document: object) -> None:
        assert self.transport is not None
        body = json.dumps(document).encode()
        self.transport.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%b" % (len(body), body)
        )


async def serve(host: str, port: int) -> None:
    tally = Tally()
    server = await asyncio.get_running_loop().create_server(lambda: ReceiverProtocol(tally), host, port)
    print("receiver listening", file=sys.stderr, flush=True)
    async with server:
        await server.serve_forever()
