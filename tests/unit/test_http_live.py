"""LiveRequests: long-lived requests end with their work, when their client leaves, or at shutdown."""

from __future__ import annotations

import asyncio

import pytest

from tidings.server.core import Unavailable
from tidings.server.http._live import ClientGone, LiveRequests


class FakeClient:
    """An ASGI ``receive`` whose client disconnects when told to."""

    def __init__(self) -> None:
        self.gone = asyncio.Event()

    async def receive(self) -> dict[str, object]:
        await self.gone.wait()
        return {"type": "http.disconnect"}


async def _forever(started: asyncio.Event, cancelled: list[bool]) -> None:
    started.set()
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        cancelled.append(True)
        raise


async def test_run_returns_what_the_work_returns() -> None:
    live = LiveRequests()

    async def work() -> int:
        return 42

    assert await live.run(FakeClient().receive, work()) == 42
    assert len(live) == 0


async def test_run_raises_what_the_work_raises() -> None:
    async def work() -> None:
        raise Unavailable("from the core")

    with pytest.raises(Unavailable, match="from the core"):
        await LiveRequests().run(FakeClient().receive, work())


async def test_client_leaving_cancels_the_work() -> None:
    live, client = LiveRequests(), FakeClient()
    started, cancelled = asyncio.Event(), list[bool]()
    running = asyncio.create_task(live.run(client.receive, _forever(started, cancelled)))
    await started.wait()

    client.gone.set()

    with pytest.raises(ClientGone):
        await running
    assert cancelled == [True]
    assert len(live) == 0


async def test_close_ends_running_work_with_unavailable_and_refuses_new_work() -> None:
    live = LiveRequests()
    started, cancelled = asyncio.Event(), list[bool]()
    running = asyncio.create_task(live.run(FakeClient().receive, _forever(started, cancelled)))
    await started.wait()
    assert len(live) == 1

    live.close()

    with pytest.raises(Unavailable):
        await running
    assert cancelled == [True]
    assert live.closing
    with pytest.raises(Unavailable):  # the refused coroutine is closed, never "never awaited"
        await live.run(FakeClient().receive, _forever(asyncio.Event(), []))


async def test_cancelling_the_request_cancels_and_awaits_the_work() -> None:
    live = LiveRequests()
    started, cancelled = asyncio.Event(), list[bool]()
    running = asyncio.create_task(live.run(FakeClient().receive, _forever(started, cancelled)))
    await started.wait()

    running.cancel()

    with pytest.raises(asyncio.CancelledError):
        await running
    assert cancelled == [True]
    assert len(live) == 0
