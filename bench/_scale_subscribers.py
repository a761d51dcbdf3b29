"""The scale benchmark's subscribers: child processes each holding a share of the Subscribe streams on `_rawh2`.

`bench/scale.py` starts one child per ``--client-processes`` (this file, run as a script) and drives them with
a line protocol:

- stdin: ``open`` opens the child's streams (each connection's in one write); ``listen`` starts counting
  the streams that have a heartbeat afresh; ``counts`` asks for its counters; end of file closes its
  connections and ends it (also when the main process dies, however it dies);
- stdout: ``connected`` once its connections are open; ``opened T`` once every stream had its first heartbeat
  and ``delivered T`` once every stream had one item, T being ``time.monotonic()`` then (one clock for every
  process on the machine); ``counts {...}`` (JSON) answering ``counts``; ``ended STATUS: MESSAGE`` when the
  first of its streams ends (the main process stops waiting for the others then).

A stream's state is one byte here (the last round it had a heartbeat in) and two array slots in `_rawh2`; a
message is told heartbeat or item by its first byte, never decoded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from _rawh2 import Call, RawChannel, request_header_block
from momento_wire_types import cachepubsub_pb2 as pb

HOST = "127.0.0.1"
SUBSCRIBE = "/cache_client.pubsub.Pubsub/Subscribe"
# The first byte of a SubscriptionItem on the wire tells its kind: field 1 (item), 2 (discontinuity), 3 (heartbeat).
ITEM, HEARTBEAT = 0x0A, 0x1A
_END_REASONS_KEPT = 3
_STOP_TIMEOUT_S = 30.0


class ChildFailed(RuntimeError):
    """A subscriber process ended, or failed to report, before it was asked to stop."""


# --- the child's side ------------------------------------------------------------------------------------


@dataclass(eq=False)
class Tally:
    """What one child saw of its ``count`` streams; ``emit`` writes a protocol line."""

    count: int
    emit: Callable[[str], None]
    heartbeats: int = 0
    items: int = 0
    other: int = 0
    opened: int = 0
    heard: int = 0  # streams with a heartbeat since `listen`
    ended: int = 0
    end_reasons: list[str] = field(default_factory=list)
    # Per stream, the last round in which it had a heartbeat: 0 none yet, 1 while opening, then one per `listen`.
    _rounds: bytearray = field(default_factory=bytearray)
    _round: int = 1
    # `opened_at_least` waits for ``opened`` to reach ``_wake_at``.
    _wake_at: int = 0
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._rounds = bytearray(self.count)

    async def opened_at_least(self, streams: int) -> None:
        """Return once ``streams`` streams had their first heartbeat."""
        if self.opened < streams:
            self._wake_at = streams
            self._wake.clear()
            await self._wake.wait()

    def listen(self) -> None:
        """Start counting the streams that have a heartbeat (`heard`) afresh."""
        self._round += 1
        self.heard = 0

    def on_message(self, tag: int, message: bytes) -> None:
        kind = message[0] if message else 0
        if kind == HEARTBEAT:
            self.heartbeats += 1
            last_round = self._rounds[tag]
            if last_round != self._round:
                self._rounds[tag] = self._round
                self.heard += 1
                if not last_round:
                    self.opened += 1
                    if self.opened == self._wake_at:
                        self._wake.set()
                    if self.opened == self.count:
                        self.emit(f"opened {time.monotonic()!r}")
        elif kind == ITEM:
            self.items += 1
            if self.items == self.count:
                self.emit(f"delivered {time.monotonic()!r}")
        else:
            self.other += 1

    def on_end(self, tag: int, status: int, message: str) -> None:
        self.ended += 1
        if len(self.end_reasons) < _END_REASONS_KEPT:
            self.end_reasons.append(f"{status}: {message}")
        if self.ended == 1:
            self.emit(f"ended {status}: {message}")

    def counts(self) -> dict[str, Any]:
        return {
            "heartbeats": self.heartbeats,
            "items": self.items,
            "other": self.other,
            "opened": self.opened,
            "heard": self.heard,
            "ended": self.ended,
            "end_reasons": self.end_reasons,
        }


def raise_open_files_limit(needed: int) -> None:
    """Raise the soft RLIMIT_NOFILE to the hard one; fail clearly if ``needed`` descriptors do not fit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard != resource.RLIM_INFINITY and needed > hard:
        raise SystemExit(f"{needed} open files needed, the hard RLIMIT_NOFILE is {hard}")


async def serve(options: argparse.Namespace) -> None:
    """The child: connect, open the streams when told, answer ``counts``, stop at end of stdin."""
    raise_open_files_limit(options.connections + 64)
    address = f"{HOST}:{options.port}"

    def emit(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    tally = Tally(options.count, emit)
    channels = [await RawChannel.connect(address, tally.on_message, tally.on_end) for _ in range(options.connections)]
    block = request_header_block(SUBSCRIBE, address, (("cache", options.cache),))
    calls = [
        Call.of(block, pb._SubscriptionRequest(cache_name=options.cache, topic=f"t{topic}").SerializeToString())
        for topic in range(options.topics)
    ]
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    emit("connected")
    opening: asyncio.Task[None] | None = None  # a task: with an open window it waits, and counts are asked meanwhile
    try:
        while command := (await stdin.readline()).strip():
            if command == b"open":
                opening = asyncio.create_task(open_streams(channels, calls, options, tally))
            elif command == b"listen":
                tally.listen()
            elif command == b"counts":
                emit(f"counts {json.dumps(tally.counts())}")
    finally:
        if opening is not None:
            opening.cancel()
        for channel in channels:
            channel.close()


async def open_streams(
    channels: Sequence[RawChannel], calls: Sequence[Call], options: argparse.Namespace, tally: Tally
) -> None:
    """Stream ``index`` (0 to ``count``) on connection index % connections, topic (first + index) % topics; at
    most ``--open-window`` streams (0: all) waiting for their first heartbeat at a time."""
    connections, topics, count, first = len(channels), len(calls), options.count, options.first
    started = 0
    for number, channel in enumerate(channels):
        batch = range(number, count, connections)
        if options.open_window:
            await tally.opened_at_least(started + len(batch) - options.open_window)
        channel.start((calls[(first + index) % topics], index) for index in batch)
        started += len(batch)
        await asyncio.sleep(0)  # read what has arrived between connections


def child_command(
    port: int, cache: str, first: int, count: int, connections: int, topics: int, open_window: int
) -> list[str]:
    """How the main process starts a child holding streams ``first`` to ``first + count``."""
    return [
        sys.executable, __file__, "--port", str(port), "--cache", cache, "--first", str(first), "--count",
        str(count), "--connections", str(connections), "--topics", str(topics), "--open-window", str(open_window),
    ]  # fmt: skip


# --- the main process's side -----------------------------------------------------------------------------


@dataclass(eq=False)
class _Child:
    process: asyncio.subprocess.Process
    connected: asyncio.Future[None]
    opened: asyncio.Future[float]
    delivered: asyncio.Future[float]
    counts: asyncio.Queue[dict[str, Any] | None] = field(default_factory=asyncio.Queue)
    reader: asyncio.Task[None] | None = None


class SubscriberProcesses:
    """The children holding every subscription; an async context manager that stops them on exit."""

    def __init__(self, commands: Sequence[Sequence[str]]) -> None:
        self._commands = commands
        self._children: list[_Child] = []

    @property
    def pids(self) -> tuple[int, ...]:
        return tuple(child.process.pid for child in self._children)

    async def __aenter__(self) -> SubscriberProcesses:
        loop = asyncio.get_running_loop()
        for command in self._commands:
            process = await asyncio.create_subprocess_exec(
                *command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
            )
            child = _Child(process, loop.create_future(), loop.create_future(), loop.create_future())
            child.reader = asyncio.create_task(self._read(child))
            self._children.append(child)
        await asyncio.wait_for(asyncio.gather(*(child.connected for child in self._children)), 120)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for child in self._children:
            if child.process.stdin is not None:
                child.process.stdin.close()
        for child in self._children:
            try:
                await asyncio.wait_for(child.process.wait(), _STOP_TIMEOUT_S)
            except TimeoutError:
                child.process.kill()
                await child.process.wait()
            if child.reader is not None:
                await child.reader

    def open(self) -> None:
        """Tell every child to open its streams."""
        self._send(b"open\n")

    def listen(self) -> None:
        """Tell every child to count the streams that have a heartbeat from now on."""
        self._send(b"listen\n")

    async def opened(self) -> float:
        """When the last child had all its streams open (its last first heartbeat)."""
        return max(await asyncio.gather(*(asyncio.shield(child.opened) for child in self._children)))

    async def delivered(self) -> float:
        """When the last child had one item on every stream."""
        return max(await asyncio.gather(*(asyncio.shield(child.delivered) for child in self._children)))

    async def counts(self) -> dict[str, Any]:
        """Every child's counters, summed (the first end reasons of each, joined)."""
        self._send(b"counts\n")
        total: dict[str, Any] = {"end_reasons": []}
        for child in self._children:
            counts = await asyncio.wait_for(child.counts.get(), 60)
            if counts is None:
                raise ChildFailed(f"subscriber process {child.process.pid} ended")
            for key, value in counts.items():
                total[key] = total.get(key, 0) + value
        return total

    def _send(self, line: bytes) -> None:
        for child in self._children:
            if child.process.stdin is None or child.process.returncode is not None:
                raise ChildFailed(f"subscriber process {child.process.pid} ended")
            child.process.stdin.write(line)

    async def _read(self, child: _Child) -> None:
        assert child.process.stdout is not None
        while line := await child.process.stdout.readline():
            kind, _, rest = line.decode().strip().partition(" ")
            if kind == "connected":
                child.connected.set_result(None)
            elif kind == "opened":
                child.opened.set_result(float(rest))
            elif kind == "delivered":
                child.delivered.set_result(float(rest))
            elif kind == "counts":
                child.counts.put_nowait(json.loads(rest))
            elif kind == "ended":
                _fail(child, ChildFailed(f"a stream of subscriber process {child.process.pid} ended: {rest}"))
        _fail(child, ChildFailed(f"subscriber process {child.process.pid} ended (status {await child.process.wait()})"))
        child.counts.put_nowait(None)


def _fail(child: _Child, failure: ChildFailed) -> None:
    """Fail what the main process may still wait for from ``child``."""
    for future in (child.connected, child.opened, child.delivered):
        if not future.done():
            future.set_exception(failure)
            future.exception()  # retrieved: a child stopped at the end never reports these


def main() -> None:
    parser = argparse.ArgumentParser(description="one share of bench/scale.py's subscribers (started by it)")
    for name in ("--port", "--first", "--count", "--connections", "--topics", "--open-window"):
        parser.add_argument(name, type=int, required=True)
    parser.add_argument("--cache", required=True)
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
