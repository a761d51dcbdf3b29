"""Host and Origin checks against DNS rebinding and cross-site requests (issue 11, item 4).

PROTOCOL.md *HTTP safety*: a web page in the user's browser must not drive a local server.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.integration._server import ServerProcess
from tests.integration.http.conftest import new_cache, unique

StartServer = Callable[..., ServerProcess]
TEXT = {"content-type": "text/plain"}


def _error_code(response: httpx.Response) -> str:
    return str(response.json()["error"]["code"])


async def test_rebound_host_is_refused_before_anything_happens(server: ServerProcess, http: httpx.AsyncClient) -> None:
    name = unique("rebound")
    rebound = {"host": f"attacker.example:{server.http_port}"}

    created = await http.put(f"/caches/{name}", headers=rebound)
    health = await http.get("/health", headers=rebound)
    exists = await http.get(f"/caches/{name}")

    assert created.status_code == 421
    assert _error_code(created) == "misdirected_request"
    assert "--allowed-hosts" in created.json()["error"]["message"]
    assert health.status_code == 421
    assert exists.status_code == 404  # nothing was created


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "LOCALHOST", "app.localhost", "[::1]"])
async def test_loopback_names_are_answered_by_default(
    server: ServerProcess, http: httpx.AsyncClient, host: str
) -> None:
    response = await http.get("/health", headers={"host": f"{host}:{server.http_port}"})

    assert response.status_code == 200, response.text


async def test_cross_origin_simple_post_does_not_publish(short_http: httpx.AsyncClient) -> None:
    cache = await new_cache(short_http)
    evil = {**TEXT, "origin": "https://attacker.example"}

    refused = await short_http.post(f"/topics/{cache}/t", content="pwned", headers=evil)
    deleted = await short_http.delete(f"/caches/{cache}", headers={"origin": "null"})
    polled = await short_http.get(f"/topics/{cache}/t", params={"sequence_number": 1})

    assert refused.status_code == 403
    assert _error_code(refused) == "permission_denied"
    assert "--cors-origins" in refused.json()["error"]["message"]
    assert deleted.status_code == 403
    assert (await short_http.get(f"/caches/{cache}")).status_code == 200
    assert polled.json()["items"] == []  # nothing published (the poll ends at its 0.5 s timeout)


async def test_same_origin_and_non_browser_requests_are_served(server: ServerProcess, http: httpx.AsyncClient) -> None:
    topic = unique("same-origin")
    same = {**TEXT, "origin": server.http_url}

    from_console = await http.post(f"/topics/default-cache/{topic}", content="a", headers=same)
    from_curl = await http.post(f"/topics/default-cache/{topic}", content="b", headers=TEXT)

    assert from_console.status_code == 204, from_console.text
    assert from_curl.status_code == 204, from_curl.text


async def test_allowed_hosts_and_cors_origins_are_configurable(start_server: StartServer) -> None:
    server = start_server(
        "--allowed-hosts", "tidings.internal",
        "--allowed-hosts", "*.svc.example",
        "--cors-origins", "https://app.example.com",
        "--create-cache", "c",
    )  # fmt: skip
    app = "https://app.example.com"
    async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as http:
        named = await http.get("/health", headers={"host": f"tidings.internal:{server.http_port}"})
        wildcard = await http.get("/health", headers={"host": "api.svc.example"})
        loopback = await http.get("/health")  # 127.0.0.1 is no longer in the list
        preflight = await http.options(
            "/topics/c/t",
            headers={
                "host": "tidings.internal",
                "origin": app,
                "access-control-request-method": "POST",
                "access-control-request-headers": "authorization, content-type",
            },
        )
        internal = {**TEXT, "host": "tidings.internal"}
        allowed = await http.post("/topics/c/t", content="x", headers={**internal, "origin": app})
        other = await http.post("/topics/c/t", content="x", headers={**internal, "origin": "https://evil.example"})

    assert named.status_code == 200
    assert wildcard.status_code == 200
    assert loopback.status_code == 421
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == app
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert allowed.status_code == 204, allowed.text
    assert allowed.headers["access-control-allow-origin"] == app
    assert other.status_code == 403
