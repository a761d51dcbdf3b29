"""Tokens over HTTP (the same verification as gRPC) and HTTPS with --tls-cert/--tls-key."""

from __future__ import annotations

import asyncio
import ssl
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from tests.integration._server import ServerProcess
from tests.integration._tls import self_signed_certificate
from tests.integration.http._sse import SseReader
from tidings.server.auth import TokenSigner
from tidings.server.core import TopicGrant, TopicPermission

StartServer = Callable[..., ServerProcess]


@pytest.fixture
def auth_server(start_server: StartServer) -> ServerProcess:
    """A server where every request needs a token, with a cache "c"."""
    return start_server("--require-auth", "--create-cache", "c")


@pytest.fixture
async def client(auth_server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=auth_server.http_url, timeout=30) as client:
        yield client


def _admin_key(server: ServerProcess) -> str:
    return (server.data_dir / "admin.key").read_text().strip()


def _token(server: ServerProcess, role: TopicPermission, token_id: str = "") -> str:
    secret = (server.data_dir / "secret.key").read_text().strip().encode()
    token, _ = TokenSigner(secret).mint((TopicGrant(role, cache_name="c"),), 300, token_id)
    return token


async def test_require_auth_refuses_anonymous_and_bad_tokens(client: httpx.AsyncClient) -> None:
    text = {"content-type": "text/plain"}

    anonymous = await client.post("/topics/c/t", content="x", headers=text)
    bad = await client.post("/topics/c/t", content="x", headers={**text, "authorization": "Bearer nonsense"})
    stream = await client.get("/topics/c/t/events", params={"token": "nonsense"})
    caches = await client.get("/caches")

    for response in (anonymous, bad, stream, caches):
        assert response.status_code == 401, response.text
        assert response.json()["error"]["code"] == "unauthenticated"


async def test_token_id_arrives_as_publisher_id_over_sse(auth_server: ServerProcess, client: httpx.AsyncClient) -> None:
    reader_token = _token(auth_server, TopicPermission.READ_ONLY)
    writer_token = _token(auth_server, TopicPermission.WRITE_ONLY, token_id="checkout-service")

    async with client.stream("GET", "/topics/c/t/events", params={"token": reader_token}) as response:
        events = SseReader(response)
        await events.next()
        published = await client.post(
            "/topics/c/t", content="paid", headers={"content-type": "text/plain", "authorization": writer_token}
        )
        [item] = await events.items(1)

    assert published.status_code == 204
    assert item.data["publisher_id"] == "checkout-service"
    assert item.data["value"] == {"text": "paid"}


async def test_revoking_a_token_id_ends_its_event_stream(auth_server: ServerProcess, client: httpx.AsyncClient) -> None:
    token = _token(auth_server, TopicPermission.READ_ONLY, token_id="browser-7")

    async with client.stream("GET", "/topics/c/t/events", params={"token": token}) as response:
        events = SseReader(response)
        await events.next()
        revoke = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tidings", "token", "revoke", "browser-7", "--data-dir", str(auth_server.data_dir)
        )
        assert await revoke.wait() == 0
        await events.until_end()  # within the refresh interval, not the 10 s read timeout
    again = await client.get("/topics/c/t/events", params={"token": token})

    assert again.status_code == 401
    assert "revoked" in again.json()["error"]["message"]


async def test_roles_and_super_user_are_enforced(auth_server: ServerProcess, client: httpx.AsyncClient) -> None:
    read_only = {"authorization": f"Bearer {_token(auth_server, TopicPermission.READ_ONLY)}"}
    admin = {"authorization": _admin_key(auth_server)}

    publish = await client.post("/topics/c/t", content="x", headers={**read_only, "content-type": "text/plain"})
    other_cache = await client.get("/topics/other/t", headers=read_only)
    manage = await client.put("/caches/new", headers=read_only)
    listed = await client.get("/caches", headers=admin)
    created = await client.put("/caches/new", headers=admin)

    assert publish.status_code == 403
    assert publish.json()["error"]["code"] == "permission_denied"
    assert other_cache.status_code in (403, 404)
    assert manage.status_code == 403
    assert listed.json() == {"caches": [{"name": "c"}]}
    assert created.status_code == 201


async def test_tls_serves_https(start_server: StartServer, tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path)
    server = start_server("--tls-cert", str(cert), "--tls-key", str(key), "--create-cache", "c")
    url = f"https://{server.host}:{server.http_port}"

    trust = ssl.create_default_context(cafile=str(cert))
    async with httpx.AsyncClient(base_url=url, verify=trust, timeout=30) as client:
        published = await client.post("/topics/c/t", content="secret", headers={"content-type": "text/plain"})
        polled = await client.get("/topics/c/t", params={"sequence_number": 1})
    async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as plaintext:
        with pytest.raises(httpx.HTTPError):
            await plaintext.get("/health")

    assert published.status_code == 204
    assert polled.json()["items"][0]["item"]["value"] == {"text": "secret"}
    assert any(f"listening on https://127.0.0.1:{server.http_port}" in line for line in server.log)
