"""Caches over HTTP, /health, /ready, /openapi.json, the console page and /metrics."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx

from tests.integration.http.conftest import new_cache, poll, publish_text, unique

DOCS_OPENAPI = Path(__file__).parents[3] / "docs" / "openapi.json"


async def test_cache_lifecycle(http: httpx.AsyncClient) -> None:
    name = unique("lifecycle")

    created = await http.put(f"/caches/{name}")
    again = await http.put(f"/caches/{name}")
    listed = await http.get("/caches")
    shown = await http.get(f"/caches/{name}")
    deleted = await http.delete(f"/caches/{name}")
    deleted_again = await http.delete(f"/caches/{name}")
    shown_after = await http.get(f"/caches/{name}")

    assert (created.status_code, created.json()) == (201, {"name": name})
    assert (again.status_code, again.json()["error"]["code"]) == (409, "already_exists")
    assert {"name": name} in listed.json()["caches"]
    assert (shown.status_code, shown.json()) == (200, {"name": name, "subscriptions": 0})
    assert deleted.status_code == 204
    assert (deleted_again.status_code, deleted_again.json()["error"]["code"]) == (404, "not_found")
    assert shown_after.status_code == 404


async def test_bad_cache_names_are_400(http: httpx.AsyncClient) -> None:
    control = await http.put("/caches/a%00b")
    newline = await http.put("/caches/a%0Ab")  # Starlette's path convertor alone would not route it
    publish_newline = await http.post("/topics/a%0Ab/t", content="x", headers={"content-type": "text/plain"})
    too_long = await http.put("/caches/" + "n" * 256)
    nested = await http.put("/caches/a/b")

    assert control.status_code == 400
    assert "cache_name" in control.json()["error"]["message"]
    assert (newline.status_code, publish_newline.status_code) == (400, 400)
    assert "cache_name" in newline.json()["error"]["message"]
    assert too_long.status_code == 400
    assert nested.status_code == 404  # two segments: no such endpoint (a "/" in a name is %2F)


async def test_health_and_ready(http: httpx.AsyncClient) -> None:
    health = await http.get("/health")
    ready = await http.get("/ready")

    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})


async def test_served_openapi_is_the_committed_one(http: httpx.AsyncClient) -> None:
    served = (await http.get("/openapi.json")).json()

    committed = json.loads(DOCS_OPENAPI.read_text())

    assert served == committed, "regenerate it as the docstring of tidings/server/http/_openapi.py says"


async def test_console_is_served_from_the_server_only(http: httpx.AsyncClient) -> None:
    page = await http.get("/")
    script = await http.get("/console/console.js")
    style = await http.get("/console/console.css")

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert (script.status_code, style.status_code) == (200, 200)
    for text in (page.text, script.text, style.text):
        assert not re.search(r"(src|href)=[\"']?(https?:)?//", text), "the console must load nothing from elsewhere"
        assert "@import" not in text


def _samples(exposition: str) -> dict[str, float]:
    samples: dict[str, float] = {}
    for line in exposition.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


async def test_metrics_move_with_known_traffic(http: httpx.AsyncClient) -> None:
    cache = await new_cache(http)
    before = _samples((await http.get("/metrics")).text)

    for number in range(3):
        await publish_text(http, cache, "t", f"m{number}")
    await poll(http, cache, "t", 1)  # 3 deliveries over HTTP
    await http.post("/topics/no-such-cache/t", content="x", headers={"content-type": "text/plain"})  # a 404
    response = await http.get("/metrics")
    after = _samples(response.text)

    def moved(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    assert response.headers["content-type"].startswith("text/plain")
    assert moved('tidings_publishes_total{transport="http"}') == 3
    assert moved('tidings_deliveries_total{transport="http"}') == 3
    assert moved('tidings_errors_total{status="404",transport="http"}') == 1
    assert moved('tidings_publish_latency_seconds_count{transport="http"}') == 3
    assert moved('tidings_publish_to_deliver_latency_seconds_count{transport="http"}') == 1
    assert moved("tidings_caches") == 0
    assert after["tidings_caches"] >= 1
    assert after["tidings_topics"] >= 1
    assert "tidings_subscriptions" in after
    assert 'tidings_heartbeats_total{transport="grpc"}' in after
    assert "process_resident_memory_bytes" in after
    # tidings server keeps its start-up heap out of full garbage collections (their pauses were the p99 latency).
    assert after["tidings_gc_frozen_objects"] > 10_000
