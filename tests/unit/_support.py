"""Test doubles and helpers shared by the unit tests (fixtures live in ``conftest.py``)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from tidings.server.core import Discontinuity, Event, Message, PageClock, TopicCursor, TopicListener, TopicLog
from tidings.server.engine.memory import MemoryEngine


class FakeClock:
    """A clock that only moves when told to: inject it as ``clock=`` or ``wall_clock=``."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        """Move the clock forward (or back, with a negative value) and return the new time."""
        self.now += seconds
        return self.now


class MemoryStore:
    """An in-memory implementation of the core's `Store` protocol."""

    shared = False

    def __init__(self) -> None:
        self.caches: set[str] = set()
        self.page_floor = 0
        self.closed = False

    async def list_caches(self) -> list[str]:
        return sorted(self.caches)

    async def cache_exists(self, cache_name: str) -> bool:
        return cache_name in self.caches

    async def caches_version(self) -> int:
        return 0

    async def create_cache(self, cache_name: str) -> bool:
        if cache_name in self.caches:
            return False
        self.caches.add(cache_name)
        return True

    async def delete_cache(self, cache_name: str) -> bool:
        if cache_name not in self.caches:
            return False
        self.caches.remove(cache_name)
        return True

    async def load_page_floor(self) -> int:
        return self.page_floor

    async def save_page_floor(self, sequence_page: int) -> None:
        self.page_floor = sequence_page

    async def close(self) -> None:
        self.closed = True


class RecordingEngine(MemoryEngine):
    """The memory engine, remembering the logs it opened and the topics it retired, for inspection."""

    def __init__(self, retention_messages: int, retention_bytes: int) -> None:
        super().__init__(retention_messages, retention_bytes)
        self.logs: dict[tuple[str, str], TopicLog] = {}
        self.retired: list[tuple[str, str]] = []
        self._keys: dict[TopicListener, tuple[str, str]] = {}

    async def open_topic(self, cache_name: str, topic_name: str, pages: PageClock, listener: TopicListener) -> TopicLog:
        log = await super().open_topic(cache_name, topic_name, pages, listener)
        self.logs[cache_name, topic_name] = log
        self._keys[listener] = (cache_name, topic_name)
        return log

    async def retire_topic(self, topic: TopicListener) -> None:
        self.retired.append(self._keys.pop(topic))
        await super().retire_topic(topic)


async def ready_events(subscription: TopicCursor) -> list[Event]:
    """Every event the subscription can deliver right now, without waiting for anything new.

    `TopicCursor.next_events` returns without suspending when it has something to deliver, so one turn
    of the loop tells "delivered" from "would wait"; the waiting call is then cancelled. No timeouts.
    """
    events: list[Event] = []
    while True:
        task = asyncio.create_task(subscription.next_events())
        await asyncio.sleep(0)  # One loop turn, not a time-based sleep.
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            return events
        events.extend(task.result())


def numbers(events: list[Event]) -> list[int]:
    """The sequence numbers of the messages among ``events``."""
    return [event.sequence_number for event in events if isinstance(event, Message)]


def discontinuities(events: list[Event]) -> list[Discontinuity]:
    """The discontinuities among ``events``."""
    return [event for event in events if isinstance(event, Discontinuity)]


class RecordingTransport(asyncio.Transport):
    """A transport without a socket, for a protocol fed by hand: records what is written to it, whether it
    reads and whether it was closed; its peer is ``peername``."""

    def __init__(self, peername: tuple[str, int] | None = ("127.0.0.1", 40000)) -> None:
        super().__init__()
        self.written = bytearray()
        self.reading = True
        self.closing = False
        self.peername = peername

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.peername if name == "peername" else default

    def is_reading(self) -> bool:
        return self.reading

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True


def grpc_request_headers(method: str = "Publish", authority: str = "localhost") -> list[tuple[bytes, bytes]]:
    """What a gRPC client sends to call ``cache_client.pubsub.Pubsub/<method>`` at ``authority``, for tests that
    drive an HTTP/2 connection by hand (``H2Connection.send_headers``): pseudo-headers first, then
    ``content-type`` and ``te``, as gRPC requires."""
    return [
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b":path", f"/cache_client.pubsub.Pubsub/{method}".encode()),
        (b":authority", authority.encode()),
        (b"content-type", b"application/grpc"),
        (b"te", b"trailers"),
    ]
