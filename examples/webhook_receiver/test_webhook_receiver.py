"""The receiver end to end: a real tidings server POSTs a topic's messages to it; bad signatures are refused."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
import uvicorn
from webhook_receiver import Event, create_app, describe

from tidings import PutWebhook, TopicClientAsync, TopicPublish
from tidings.testing import RunningServer
from tidings.webhooks import SIGNATURE_HEADER, sign

WITHIN = 10.0


@pytest.fixture
def tidings_server_options() -> dict[str, object]:
    return {"create_caches": ["orders"]}


@pytest.fixture
async def topics(tidings_server: RunningServer) -> AsyncIterator[TopicClientAsync]:
    async with TopicClientAsync(tidings_server.endpoint) as client:
        yield client


@asynccontextmanager
async def serve(app: object) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port (listening before this yields); yields its URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False))  # type: ignore[arg-type]
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/webhook"
    finally:
        server.should_exit = True
        await serving


async def test_events_arrive_verified_in_order_once(topics: TopicClientAsync) -> None:
    # Arrange
    put = await topics.put_webhook("orders", "printer", "new-orders", "http://127.0.0.1:9/placeholder")
    assert isinstance(put, PutWebhook.Success)
    received: asyncio.Queue[Event] = asyncio.Queue()
    async with serve(create_app(put.secret, received.put_nowait)) as url:
        assert isinstance(await topics.put_webhook("orders", "printer", "new-orders", url), PutWebhook.Success)

        # Act
        for value in ("order 1", b"\x00\x01"):
            assert isinstance(await topics.publish("orders", "new-orders", value), TopicPublish.Success)
        first = await asyncio.wait_for(received.get(), WITHIN)
        second = await asyncio.wait_for(received.get(), WITHIN)

    # Assert
    assert describe(first) == "orders/new-orders #1: order 1"
    assert describe(second) == "orders/new-orders #2: <2 bytes>"


async def test_bad_signatures_are_refused_and_repeats_skipped() -> None:
    # Arrange
    events: list[Event] = []
    app = create_app("the-secret", events.append)
    body = json.dumps(
        {"cache": "c", "topic": "t", "topic_sequence_number": 1, "sequence_page": 7, "text": "x"}
    ).encode()

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://receiver") as client:
        # Act
        forged = await client.post("/webhook", content=body, headers={SIGNATURE_HEADER: sign(body, "wrong")})
        unsigned = await client.post("/webhook", content=body)
        good = await client.post("/webhook", content=body, headers={SIGNATURE_HEADER: sign(body, "the-secret")})
        repeat = await client.post("/webhook", content=body, headers={SIGNATURE_HEADER: sign(body, "the-secret")})
        junk = await client.post("/webhook", content=b"[]", headers={SIGNATURE_HEADER: sign(b"[]", "the-secret")})

    # Assert
    assert (forged.status_code, unsigned.status_code) == (401, 401)
    assert (good.status_code, repeat.status_code) == (204, 204)
    assert junk.status_code == 400
    assert [describe(event) for event in events] == ["c/t #1: x"]
