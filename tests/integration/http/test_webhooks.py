"""``/webhooks/{cache}[/{name}[/secret]]`` over HTTP against a real server (super-user only)."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tests.integration._server import ServerProcess
from tests.integration.http.conftest import new_cache
from tidings.server.auth import TokenSigner
from tidings.server.core import TopicGrant, TopicPermission

URL = "https://example.test/in"


async def test_webhook_lifecycle_over_http(http: httpx.AsyncClient) -> None:
    # Arrange
    cache = await new_cache(http)

    # Act
    put = await http.put(f"/webhooks/{cache}/hook", json={"topic": "t", "url": URL})
    replaced = await http.put(f"/webhooks/{cache}/hook", json={"topic": "t2", "url": URL + "2"})
    listed = await http.get(f"/webhooks/{cache}")
    secret = await http.get(f"/webhooks/{cache}/hook/secret")
    rotated = await http.post(f"/webhooks/{cache}/hook/secret")
    deleted = await http.delete(f"/webhooks/{cache}/hook")
    empty = await http.get(f"/webhooks/{cache}")

    # Assert
    assert put.status_code == 200
    created_secret = put.json()["secret"]
    assert put.json() == {"name": "hook", "topic": "t", "url": URL, "secret": created_secret}
    assert replaced.json()["secret"] == created_secret
    assert listed.json() == {"webhooks": [{"name": "hook", "topic": "t2", "url": URL + "2"}]}
    assert secret.json() == {"secret": created_secret}
    assert rotated.status_code == 200
    assert rotated.json()["secret"] != created_secret
    assert deleted.status_code == 204
    assert empty.json() == {"webhooks": []}


async def test_bad_webhook_requests(http: httpx.AsyncClient) -> None:
    # Arrange
    cache = await new_cache(http)

    # Act
    not_json = await http.put(f"/webhooks/{cache}/hook", content=b"{", headers={"content-type": "application/json"})
    no_url = await http.put(f"/webhooks/{cache}/hook", json={"topic": "t"})
    bad_url = await http.put(f"/webhooks/{cache}/hook", json={"topic": "t", "url": "ftp://x/"})
    bad_name = await http.put(f"/webhooks/{cache}/a%01b", json={"topic": "t", "url": URL})
    huge = await http.put(f"/webhooks/{cache}/hook", json={"topic": "t", "url": URL + "x" * 20_000})
    unknown_cache = await http.get("/webhooks/no-such-cache")
    unknown_webhook = await http.get(f"/webhooks/{cache}/nope/secret")
    wrong_method = await http.post(f"/webhooks/{cache}")

    # Assert
    for response in (not_json, no_url, bad_url, bad_name, huge):
        assert response.status_code == 400, response.text
    assert "post_url" in bad_url.json()["error"]["message"]
    assert "webhook_name" in bad_name.json()["error"]["message"]
    assert (unknown_cache.status_code, unknown_webhook.status_code) == (404, 404)
    assert wrong_method.status_code == 405
    assert (await http.get(f"/webhooks/{cache}")).json() == {"webhooks": []}


async def test_webhooks_need_a_super_user(start_server: Callable[..., ServerProcess]) -> None:
    # Arrange
    server = start_server("--require-auth", "--create-cache", "c")
    secret = (server.data_dir / "secret.key").read_text().strip().encode()
    token, _ = TokenSigner(secret).mint((TopicGrant(TopicPermission.READ_WRITE, cache_name="c"),), 300, "")
    admin = (server.data_dir / "admin.key").read_text().strip()

    async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as client:
        # Act
        anonymous = await client.get("/webhooks/c")
        restricted = await client.put(
            "/webhooks/c/hook", json={"topic": "t", "url": URL}, headers={"authorization": token}
        )
        allowed = await client.put(
            "/webhooks/c/hook", json={"topic": "t", "url": URL}, headers={"authorization": admin}
        )

    # Assert
    assert anonymous.status_code == 401
    assert restricted.status_code == 403
    assert allowed.status_code == 200
