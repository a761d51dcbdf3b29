"""GET /topics/{cache}/{topic}: long-poll, resume loops, gaps, limits."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from tests.integration.http.conftest import new_cache, poll, publish_text


async def _collect(client: httpx.AsyncClient, cache: str, topic: str, count: int, page: int) -> list[dict[str, Any]]:
    """Loop long polls as a client would (last + 1, its page) until ``count`` items arrived; every entry."""
    entries: list[dict[str, Any]] = []
    next_sequence, items = 1, 0
    while items < count:
        batch = await poll(client, cache, topic, next_sequence, page)
        assert batch, "a long poll with retained items answered with none"
        for entry in batch:
            entries.append(entry)
            if "item" in entry:
                items += 1
                next_sequence = entry["item"]["topic_sequence_number"] + 1
                page = entry["item"]["sequence_page"]
            else:
                next_sequence = entry["discontinuity"]["new_topic_sequence"] + 1
                page = entry["discontinuity"]["new_sequence_page"]
    return entries


async def test_long_poll_wakes_on_publish(http: httpx.AsyncClient, cache: str) -> None:
    # N=1 on a fresh topic waits for its first message (PROTOCOL.md rule 3), whether or not the poll
    # subscribed before the publish: no sleep is needed to order them.
    started = time.monotonic()
    waiting = asyncio.create_task(poll(http, cache, "t", sequence_number=1))
    await publish_text(http, cache, "t", "wake up")

    [entry] = await waiting

    assert entry["item"]["value"] == {"text": "wake up"}
    assert time.monotonic() - started < 10  # the server's long-poll timeout is 30 s


async def test_live_long_poll_gets_only_new_messages(http: httpx.AsyncClient, cache: str) -> None:
    await publish_text(http, cache, "t", "old")
    [old] = await poll(http, cache, "t", sequence_number=1)
    waiting = asyncio.create_task(poll(http, cache, "t"))  # N=0: live
    # Publish until the live poll has one: it may subscribe after some of these.
    while not waiting.done():
        await publish_text(http, cache, "t", "new")
        await asyncio.wait({waiting}, timeout=0.05)

    entries = await waiting

    assert all(entry["item"]["value"] == {"text": "new"} for entry in entries)
    assert entries[0]["item"]["topic_sequence_number"] > old["item"]["topic_sequence_number"]


async def test_long_poll_times_out_with_no_items(short_http: httpx.AsyncClient) -> None:
    cache = await new_cache(short_http)
    started = time.monotonic()

    entries = await poll(short_http, cache, "t")

    assert entries == []
    assert 0.4 < time.monotonic() - started < 5


async def test_resume_loop_without_gaps_gets_every_message_once(http: httpx.AsyncClient, cache: str) -> None:
    for number in range(1, 141):
        await publish_text(http, cache, "t", f"m{number}")

    first_response = await poll(http, cache, "t", 1)
    entries = await _collect(http, cache, "t", 140, page=0)

    assert len(first_response) == 128  # at most 4 reads of the topic per response
    assert [entry["item"]["value"]["text"] for entry in entries] == [f"m{n}" for n in range(1, 141)]
    assert len({entry["item"]["sequence_page"] for entry in entries}) == 1


async def test_resume_loop_across_a_gap_gets_a_discontinuity(short_http: httpx.AsyncClient) -> None:
    cache = await new_cache(short_http)
    for number in range(1, 13):  # retention keeps the last 5: 8..12
        await publish_text(short_http, cache, "t", f"m{number}")

    entries = await _collect(short_http, cache, "t", 5, page=0)

    gap, *items = entries
    assert gap["discontinuity"]["last_topic_sequence"] == 0
    assert gap["discontinuity"]["new_topic_sequence"] == 7
    assert [entry["item"]["topic_sequence_number"] for entry in items] == [8, 9, 10, 11, 12]
    assert gap["discontinuity"]["new_sequence_page"] == items[0]["item"]["sequence_page"]


async def test_resume_with_an_old_page_gets_a_discontinuity_to_the_current_page(
    http: httpx.AsyncClient, cache: str
) -> None:
    await publish_text(http, cache, "t", "a")
    [first] = await poll(http, cache, "t", 1)
    page = first["item"]["sequence_page"]

    entries = await poll(http, cache, "t", 5, page - 1)

    gap, item = entries
    assert gap["discontinuity"] == {"last_topic_sequence": 4, "new_topic_sequence": 0, "new_sequence_page": page}
    assert item["item"]["topic_sequence_number"] == 1


async def test_poll_errors(http: httpx.AsyncClient, cache: str) -> None:
    missing = await http.get("/topics/no-such-cache/t")
    bad_number = await http.get(f"/topics/{cache}/t", params={"sequence_number": "-1"})
    too_big = await http.get(f"/topics/{cache}/t", params={"sequence_page": str(2**64)})
    two_tokens = await http.get(f"/topics/{cache}/t", params={"token": "a"}, headers={"authorization": "b"})

    assert missing.status_code == 404
    assert bad_number.status_code == 400
    assert "sequence_number" in bad_number.json()["error"]["message"]
    assert too_big.status_code == 400
    assert two_tokens.status_code == 400


async def test_subscription_limit_is_429(limited_http: httpx.AsyncClient) -> None:
    cache = await new_cache(limited_http)
    async with limited_http.stream("GET", f"/topics/{cache}/t/events") as stream:
        assert stream.status_code == 200
        await stream.aiter_bytes().__anext__()  # the stream is open: its subscription counts

        response = await limited_http.get(f"/topics/{cache}/other")

    assert response.status_code == 429
    assert response.json()["error"]["code"] == "topic_subscriptions_limit_exceeded"


async def test_disconnected_long_poll_frees_its_subscription(limited_http: httpx.AsyncClient) -> None:
    cache = await new_cache(limited_http)
    # The limit is 1 subscription per cache: each poll below can only start once the one before is freed.
    for _ in range(3):
        waiting = asyncio.create_task(limited_http.get(f"/topics/{cache}/t"))
        status = await _wait_for_subscriptions(limited_http, cache, 1)
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        assert status == 1
        await _wait_for_subscriptions(limited_http, cache, 0)


async def _wait_for_subscriptions(client: httpx.AsyncClient, cache: str, count: int) -> int:
    """Poll the cache's subscription count until it is ``count`` (the server offers no event to await)."""
    async with asyncio.timeout(10):
        while True:
            subscriptions = (await client.get(f"/caches/{cache}")).json()["subscriptions"]
            if subscriptions == count:
                return subscriptions  # type: ignore[no-any-return]
            await asyncio.sleep(0.01)
