"""A minimal Server-Sent Events reader over an httpx streaming response, for tests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

READ_TIMEOUT = 10.0


@dataclass(frozen=True)
class SseEvent:
    """One dispatched event: its type, id (``None`` if the frame had none) and parsed JSON data."""

    event: str
    id: str | None
    data: Any


class SseReader:
    """Reads events from an open ``text/event-stream`` response."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines: AsyncIterator[str] = response.aiter_lines()

    async def next(self, within: float = READ_TIMEOUT) -> SseEvent:
        """The next event (``retry`` and comment lines are skipped); fails if none comes ``within`` seconds."""
        return await asyncio.wait_for(self._next(), within)

    async def _next(self) -> SseEvent:
        fields: dict[str, str] = {}
        async for line in self._lines:
            if not line:
                if "data" in fields:
                    return SseEvent(fields.get("event", "message"), fields.get("id"), json.loads(fields["data"]))
                fields = {}
                continue
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
        raise EOFError("stream ended")

    async def until_end(self, within: float = READ_TIMEOUT) -> list[SseEvent]:
        """Every event until the server ends the stream; fails if it does not end ``within`` seconds."""
        events: list[SseEvent] = []
        async with asyncio.timeout(within):
            while True:
                try:
                    events.append(await self._next())
                except EOFError:
                    return events

    async def items(self, count: int) -> list[SseEvent]:
        """The next ``count`` item events, skipping heartbeats; fails on a discontinuity."""
        items: list[SseEvent] = []
        while len(items) < count:
            event = await self.next()
            assert event.event != "discontinuity", event
            if event.event == "item":
                items.append(event)
        return items
