"""GET /topics/{cache}/{topic}/events: Server-Sent Events, resume with Last-Event-ID, endings."""

from __future__ import annotations

import asyncio
import base64
import signal
import time
from collections.abc import Callable

import httpx

from tests.integration._server import ServerProcess
from tests.integration.http._sse import SseReader
from tests.integration.http.conftest import new_cache, publish_text
from tests.integration.http.test_poll import _wait_for_subscriptions

StartServer = Callable[..., ServerProcess]


def _events_url(cache: str, topic: str = "t") -> str:
    return f"/topics/{cache}/{topic}/events"


async def test_stream_starts_with_a_heartbeat_then_items_with_page_seq_ids(http: httpx.AsyncClient, cache: str) -> None:
    async with http.stream("GET", _events_url(cache)) as response:
        events = SseReader(response)
        first = await events.next()
        await publish_text(http, cache, "t", "one")
        await http.post(f"/topics/{cache}/t", content=b"\x00\xff", headers={"content-type": "application/octet-stream"})

        text, binary = await events.items(2)

    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert (first.event, first.id) == ("heartbeat", None)
    page = text.data["sequence_page"]
    assert text.id == f"{page}:1"
    assert text.data["value"] == {"text": "one"}
    assert binary.id == f"{page}:2"
    assert base64.b64decode(binary.data["value"]["binary"]) == b"\x00\xff"


async def test_last_event_id_resumes_without_loss_or_repeats(http: httpx.AsyncClient, cache: str) -> None:
    async with http.stream("GET", _events_url(cache)) as response:
        events = SseReader(response)
        await events.next()  # the heartbeat: subscribed
        for number in range(1, 4):
            await publish_text(http, cache, "t", f"m{number}")
        _, second, _ = await events.items(3)
    for number in range(4, 6):  # published while disconnected
        await publish_text(http, cache, "t", f"m{number}")

    async with http.stream("GET", _events_url(cache), headers={"last-event-id": second.id or ""}) as response:
        resumed = await SseReader(response).items(3)

    assert [event.data["value"]["text"] for event in resumed] == ["m3", "m4", "m5"]


async def test_last_event_id_query_resumes_and_the_header_wins(http: httpx.AsyncClient, cache: str) -> None:
    for number in range(1, 4):
        await publish_text(http, cache, "t", f"m{number}")
    async with http.stream("GET", _events_url(cache), params={"sequence_number": 1}) as response:
        [first] = await SseReader(response).items(1)
    page = first.data["sequence_page"]

    async with http.stream("GET", _events_url(cache), params={"last_event_id": f"{page}:1"}) as response:
        [from_query] = await SseReader(response).items(1)
    async with http.stream(
        "GET", _events_url(cache), params={"last_event_id": f"{page}:1"}, headers={"last-event-id": f"{page}:2"}
    ) as response:
        [from_header] = await SseReader(response).items(1)

    assert from_query.data["topic_sequence_number"] == 2
    assert from_header.data["topic_sequence_number"] == 3


async def test_resume_past_retention_gets_a_discontinuity_event(short_http: httpx.AsyncClient) -> None:
    cache = await new_cache(short_http)
    for number in range(1, 13):  # retention keeps 8..12
        await publish_text(short_http, cache, "t", f"m{number}")
    async with short_http.stream("GET", _events_url(cache), params={"sequence_number": 12}) as response:
        [last] = await SseReader(response).items(1)
    page = last.data["sequence_page"]

    async with short_http.stream("GET", _events_url(cache), headers={"last-event-id": f"{page}:2"}) as response:
        events = SseReader(response)
        heartbeat, gap = await events.next(), await events.next()
        items = await events.items(5)

    assert heartbeat.event == "heartbeat"
    assert gap.event == "discontinuity"
    assert gap.id == f"{page}:7"
    assert gap.data == {"last_topic_sequence": 2, "new_topic_sequence": 7, "new_sequence_page": page}
    assert [event.data["topic_sequence_number"] for event in items] == [8, 9, 10, 11, 12]


async def test_idle_stream_gets_heartbeats(short_http: httpx.AsyncClient) -> None:
    cache = await new_cache(short_http)

    async with short_http.stream("GET", _events_url(cache)) as response:
        events = SseReader(response)
        kinds = [(await events.next()).event, (await events.next(within=5)).event]

    assert kinds == ["heartbeat", "heartbeat"]


async def test_stream_request_errors_are_json(http: httpx.AsyncClient, cache: str) -> None:
    malformed = await http.get(_events_url(cache), headers={"last-event-id": "not-an-id"})
    missing = await http.get(_events_url("no-such-cache"))
    two_tokens = await http.get(_events_url(cache), params={"token": "a"}, headers={"authorization": "b"})

    assert (malformed.status_code, malformed.json()["error"]["code"]) == (400, "invalid_argument")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "not_found")
    assert two_tokens.status_code == 400


async def test_deleting_the_cache_ends_the_stream(http: httpx.AsyncClient) -> None:
    cache = await new_cache(http)
    async with http.stream("GET", _events_url(cache)) as response:
        events = SseReader(response)
        await events.next()

        deleted = await http.delete(f"/caches/{cache}")
        remaining = await events.until_end()

    assert deleted.status_code == 204
    assert {event.event for event in remaining} <= {"heartbeat"}


async def test_closed_stream_frees_its_subscription(limited_http: httpx.AsyncClient) -> None:
    cache = await new_cache(limited_http)
    for _ in range(3):  # the limit is 1 subscription per cache
        async with limited_http.stream("GET", _events_url(cache)) as response:
            assert response.status_code == 200
            await SseReader(response).next()
        await _wait_for_subscriptions(limited_http, cache, 0)


async def test_shutdown_ends_streams_and_long_polls_promptly(start_server: StartServer) -> None:
    server = start_server()
    async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as client:
        cache = await new_cache(client)
        async with client.stream("GET", _events_url(cache)) as response:
            events = SseReader(response)
            await events.next()
            waiting_poll = asyncio.create_task(client.get(f"/topics/{cache}/t"))
            await _wait_for_subscriptions(client, cache, 2)
            started = time.monotonic()
            stopping = asyncio.get_running_loop().run_in_executor(None, server.stop, signal.SIGTERM)

            remaining = await events.until_end()
            poll_response = await waiting_poll
            exit_code = await stopping

    assert {event.event for event in remaining} <= {"heartbeat"}
    assert poll_response.status_code == 503
    assert poll_response.json()["error"]["code"] == "unavailable"
    assert exit_code == 0
    assert time.monotonic() - started < 4  # the grace period is 5 s: nothing waited for it
