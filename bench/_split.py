"""Subscribers split over several load-generator processes, so that one client process is not the bound.

The main process of a ``fanout`` or ``latency`` run keeps the publisher and its own share of the subscribers
and starts the other shares as child processes of ``bench/loadgen.py`` itself (``--subscriber-topic``). A child
speaks a line protocol:

- stdout: ``ready`` once all its subscriptions have their first heartbeat; ``p FULLY_DELIVERED DELIVERIES``
  whenever the highest message all its subscribers have read advances (at most once per event-loop turn, so
  a few hundred lines a second rather than one per delivery), with its deliveries so far; last, one JSON
  object, its report (or ``{"error": ...}``);
- stdin: any line, or end of file, asks it to stop. End of file is also what a child sees when the main
  process dies, however it dies, so a child never outlives its run.

The main process reads the children's progress without polling (the publisher waits on an event that each
progress line sets) and their CPU time from ``/proc/<pid>/stat``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from _client import BenchError, DeliveryListener, Snapshot, Subscription, Target
from momento_wire_types import cachepubsub_pb2

# The last line of a latency child carries every sample it took (tens of thousands of numbers).
_LINE_LIMIT = 1 << 26
_STOP_TIMEOUT_S = 30.0


def shares(subscribers: int, processes: int) -> list[int]:
    """Subscribers per process, as even as possible; the main process (index 0) gets the first share."""
    base, extra = divmod(subscribers, processes)
    return [base + (1 if index < extra else 0) for index in range(processes)]


def merge_anomalies(reports: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Sum gaps, reorders, discontinuities and stream errors over the processes' reports."""
    errors: Counter[str] = Counter()
    for report in reports:
        errors.update(report.get("stream_errors") or {})
    merged: dict[str, Any] = {
        key: sum(int(report.get(key) or 0) for report in reports) for key in ("gaps", "out_of_order", "discontinuities")
    }
    merged["stream_errors"] = dict(errors)
    return merged


# --- the main process's side -----------------------------------------------------------------------------


@dataclass(eq=False)
class _Child:
    process: asyncio.subprocess.Process
    fully_delivered: int = 0
    deliveries: int = 0
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    report: dict[str, Any] | None = None
    reader: asyncio.Task[None] | None = None


class SubscriberProcesses:
    """The child processes holding all but the main process's share of the subscribers (none when P = 1).

    ``on_progress`` is called whenever a child reports progress or ends; ``fully_delivered`` and
    ``deliveries`` are the children's latest figures, and ``pids`` name them for CPU readings.
    """

    def __init__(self, on_progress: Callable[[], None]) -> None:
        self._on_progress = on_progress
        self._progressed = asyncio.Event()
        self._children: list[_Child] = []

    @property
    def pids(self) -> tuple[int, ...]:
        return tuple(child.process.pid for child in self._children)

    @property
    def fully_delivered(self) -> int:
        """The highest message every child's subscribers have read (unbounded without children)."""
        return min((child.fully_delivered for child in self._children), default=sys.maxsize)

    @property
    def deliveries(self) -> int:
        return sum(child.deliveries for child in self._children)

    async def start(self, commands: Sequence[Sequence[str]], ready_within_s: float) -> None:
        """Start one child per command; return once every child's subscriptions are ready."""
        for command in commands:
            process = await asyncio.create_subprocess_exec(
                *command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=_LINE_LIMIT
            )
            child = _Child(process)
            child.reader = asyncio.create_task(self._read(child))
            self._children.append(child)
        waits = [asyncio.create_task(child.ready.wait()) for child in self._children]
        try:
            await asyncio.wait_for(asyncio.gather(*waits), ready_within_s)
        except TimeoutError:
            raise BenchError(f"subscriber processes were not ready in {ready_within_s} s") from None
        self.check()

    def check(self) -> None:
        """Raise if a child has ended or failed before it was asked to stop."""
        for child in self._children:
            if child.ended.is_set() or (child.report is not None and "error" in child.report):
                raise BenchError(f"subscriber process {child.process.pid} failed: {self._failure(child)}")

    def snapshot(self, target: Target, deliveries: int) -> Snapshot:
        """Counters now, with the children's deliveries added to ``deliveries`` and their CPU time counted."""
        self.check()
        try:
            return Snapshot.take(target, deliveries + self.deliveries, self.pids)
        except FileNotFoundError as error:  # a child ended after `check`: its /proc entry is gone
            raise BenchError(f"a subscriber process ended during the measured window: {error}") from error

    async def delivered(self, deliveries: int) -> None:
        """Wait until the children have delivered ``deliveries`` items in all."""
        while self.deliveries < deliveries:
            self.check()
            self._progressed.clear()
            await self._progressed.wait()

    async def stop(self) -> list[dict[str, Any]]:
        """Ask every child to stop and return their final reports."""
        for child in self._children:
            stdin = child.process.stdin
            assert stdin is not None
            with contextlib.suppress(ConnectionError):
                stdin.write(b"stop\n")
                stdin.close()
        try:
            await asyncio.wait_for(asyncio.gather(*(child.ended.wait() for child in self._children)), _STOP_TIMEOUT_S)
        except TimeoutError:
            raise BenchError(f"subscriber processes did not stop in {_STOP_TIMEOUT_S} s") from None
        reports = []
        for child in self._children:
            if child.report is None or "error" in child.report:
                raise BenchError(f"subscriber process {child.process.pid} failed: {self._failure(child)}")
            reports.append(child.report)
        return reports

    async def close(self) -> None:
        """Kill whatever child is still running and reap every one (always called, also on failure)."""
        for child in self._children:
            if child.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    child.process.kill()
        for child in self._children:
            await child.process.wait()
            if child.reader is not None:
                child.reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await child.reader

    async def _read(self, child: _Child) -> None:
        stdout = child.process.stdout
        assert stdout is not None
        try:
            while line := await stdout.readline():
                if line.startswith(b"p "):
                    _, fully_delivered, deliveries = line.split()
                    child.fully_delivered, child.deliveries = int(fully_delivered), int(deliveries)
                elif line == b"ready\n":
                    child.ready.set()
                elif line.startswith(b"{"):
                    child.report = json.loads(line)
                self._notify()
        finally:
            child.ended.set()
            child.ready.set()  # a child that ends before it is ready fails `start`'s check
            self._notify()

    def _notify(self) -> None:
        self._progressed.set()
        self._on_progress()

    @staticmethod
    def _failure(child: _Child) -> str:
        if child.report is not None and "error" in child.report:
            return str(child.report["error"])
        code = child.process.returncode
        return "it ended early" if code is None else f"it exited with {code} (its stderr is above)"


# --- a child's side --------------------------------------------------------------------------------------


def emit(line: str) -> None:
    """Write one protocol line to stdout, unbuffered (the main process may be gone: then nothing happens)."""
    data = (line + "\n").encode()
    with contextlib.suppress(BrokenPipeError):
        while data:
            data = data[os.write(sys.stdout.fileno(), data) :]


class Listeners:
    """Hands every event of a subscription to several listeners, in order."""

    def __init__(self, *listeners: DeliveryListener) -> None:
        self._listeners = listeners

    def on_item(self, subscription: Subscription, now_ns: int, item: cachepubsub_pb2._TopicItem) -> None:
        for listener in self._listeners:
            listener.on_item(subscription, now_ns, item)

    def on_skipped(self, subscription: Subscription, first: int, last: int) -> None:
        for listener in self._listeners:
            listener.on_skipped(subscription, first, last)


async def report_progress(advanced: asyncio.Event, progress: Callable[[], tuple[int, int]]) -> None:
    """Emit ``p FULLY_DELIVERED DELIVERIES`` each time ``advanced`` is set (at most once per loop turn)."""
    while True:
        await advanced.wait()
        advanced.clear()
        fully_delivered, deliveries = progress()
        emit(f"p {fully_delivered} {deliveries}")


async def stop_requested() -> None:
    """Return when a line or end of file arrives on stdin (the main process asks to stop, or has died)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        await reader.readline()
    finally:
        transport.close()
