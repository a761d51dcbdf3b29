"""POST /topics/{cache}/{topic}: content types, sizes, names, tokens and the error statuses."""

from __future__ import annotations

import asyncio
import base64

import httpx
import pytest

from tests.integration._server import ServerProcess
from tests.integration.http.conftest import new_cache, poll, publish_text

LIMIT = 4096  # the default --max-message-size


def _error_code(response: httpx.Response) -> str:
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body["error"]) == {"code", "message"}
    return body["error"]["code"]  # type: ignore[no-any-return]


async def test_publish_text_is_delivered_as_text(http: httpx.AsyncClient, cache: str) -> None:
    response = await http.post(f"/topics/{cache}/t", content="héllo", headers={"content-type": "text/plain"})

    [entry] = await poll(http, cache, "t", sequence_number=1)
    assert response.status_code == 204
    assert response.content == b""
    assert entry["item"]["value"] == {"text": "héllo"}
    assert entry["item"]["topic_sequence_number"] == 1
    assert entry["item"]["publisher_id"] == ""


async def test_publish_binary_is_delivered_as_base64(http: httpx.AsyncClient, cache: str) -> None:
    value = bytes(range(256))

    response = await http.post(
        f"/topics/{cache}/t", content=value, headers={"content-type": "application/octet-stream"}
    )

    [entry] = await poll(http, cache, "t", sequence_number=1)
    assert response.status_code == 204
    assert base64.b64decode(entry["item"]["value"]["binary"]) == value


async def test_publish_text_with_utf8_charset_is_accepted(http: httpx.AsyncClient, cache: str) -> None:
    response = await http.post(
        f"/topics/{cache}/t", content="x", headers={"content-type": 'Text/Plain; charset="UTF-8"'}
    )

    assert response.status_code == 204


async def test_publish_invalid_utf8_as_text_is_400(http: httpx.AsyncClient, cache: str) -> None:
    response = await http.post(f"/topics/{cache}/t", content=b"\xff\xfe", headers={"content-type": "text/plain"})

    assert response.status_code == 400
    assert _error_code(response) == "invalid_argument"
    assert "UTF-8" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "content_type",
    [None, "application/json", "text/plain; charset=iso-8859-1", "multipart/form-data"],
    ids=["missing", "json", "latin1", "form"],
)
async def test_publish_other_content_types_are_415(
    http: httpx.AsyncClient, cache: str, content_type: str | None
) -> None:
    headers = {} if content_type is None else {"content-type": content_type}

    response = await http.post(f"/topics/{cache}/t", content=b"x", headers=headers)

    assert response.status_code == 415
    assert _error_code(response) == "unsupported_media_type"


async def test_publish_empty_body_is_400(http: httpx.AsyncClient, cache: str) -> None:
    response = await http.post(f"/topics/{cache}/t", content=b"", headers={"content-type": "text/plain"})

    assert response.status_code == 400
    assert _error_code(response) == "invalid_argument"


async def test_publish_to_missing_cache_is_404(http: httpx.AsyncClient) -> None:
    response = await http.post("/topics/no-such-cache/t", content="x", headers={"content-type": "text/plain"})

    assert response.status_code == 404
    assert _error_code(response) == "not_found"


@pytest.mark.parametrize(
    ("topic", "field"),
    [("a%01b", "topic_name"), ("x" * 256, "topic_name"), ("%FF", "UTF-8")],
    ids=["control-character", "too-long", "not-utf8"],
)
async def test_publish_bad_topic_name_is_400(http: httpx.AsyncClient, cache: str, topic: str, field: str) -> None:
    response = await http.post(f"/topics/{cache}/{topic}", content="x", headers={"content-type": "text/plain"})

    assert response.status_code == 400
    assert field in response.json()["error"]["message"]


async def test_names_may_contain_encoded_slashes(http: httpx.AsyncClient) -> None:
    created = await http.put("/caches/team%2Fa")

    published = await http.post("/topics/team%2Fa/x%2Fy", content="v", headers={"content-type": "text/plain"})

    [entry] = await poll(http, "team%2Fa", "x%2Fy", sequence_number=1)
    assert (created.status_code, published.status_code) == (201, 204)
    assert entry["item"]["value"] == {"text": "v"}
    assert (await http.delete("/caches/team%2Fa")).status_code == 204


async def test_token_in_header_and_query_is_400(http: httpx.AsyncClient, cache: str) -> None:
    headers = {"content-type": "text/plain", "authorization": "a"}

    response = await http.post(f"/topics/{cache}/t", params={"token": "b"}, content="x", headers=headers)

    assert response.status_code == 400
    assert "not both" in response.json()["error"]["message"]


@pytest.mark.parametrize("where", ["header", "bearer", "query"])
@pytest.mark.parametrize("valid", [True, False], ids=["admin-key", "bogus"])
async def test_token_is_read_from_either_place_and_verified(
    http: httpx.AsyncClient, server: ServerProcess, cache: str, where: str, valid: bool
) -> None:
    # Anonymous requests are allowed on this (loopback) server, but a token that is sent must be valid.
    token = (server.data_dir / "admin.key").read_text().strip() if valid else "bogus"
    headers = {"content-type": "text/plain"}
    params = {}
    if where == "query":
        params["token"] = token
    else:
        headers["authorization"] = token if where == "header" else f"Bearer {token}"

    response = await http.post(f"/topics/{cache}/t", params=params, content="x", headers=headers)

    assert response.status_code == (204 if valid else 401)


async def test_oversized_body_is_413(http: httpx.AsyncClient, cache: str) -> None:
    response = await http.post(f"/topics/{cache}/t", content=b"x" * (LIMIT + 1), headers={"content-type": "text/plain"})

    assert response.status_code == 413
    assert _error_code(response) == "request_size_limit_exceeded"


async def test_body_at_the_limit_is_published(http: httpx.AsyncClient, cache: str) -> None:
    response = await http.post(
        f"/topics/{cache}/t", content=b"x" * LIMIT, headers={"content-type": "application/octet-stream"}
    )

    assert response.status_code == 204


async def _raw_request(server: ServerProcess, head: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(server.host, server.http_port)
    writer.write(head.encode("latin-1"))
    await writer.drain()
    return reader, writer


async def test_declared_oversized_body_is_refused_before_it_is_sent(server: ServerProcess, cache: str) -> None:
    # Only the head is sent: a server that waited for the 100 MB body would never answer.
    head = (
        f"POST /topics/{cache}/t HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n"
        "Content-Length: 100000000\r\n\r\n"
    )
    reader, writer = await _raw_request(server, head)

    status_line = await asyncio.wait_for(reader.readline(), 10)

    writer.close()
    assert status_line.startswith(b"HTTP/1.1 413 ")


async def test_streamed_oversized_body_is_refused_at_the_limit(server: ServerProcess, cache: str) -> None:
    # A chunked body with no declared length: the server must answer once it has read past the limit, while
    # the client has sent a tiny fraction of what it goes on to send (it never sends the end of the body).
    head = (
        f"POST /topics/{cache}/t HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    )
    reader, writer = await _raw_request(server, head)
    chunk = b"x" * 1024
    for _ in range(LIMIT // len(chunk) + 2):
        writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    await writer.drain()

    status_line = await asyncio.wait_for(reader.readline(), 10)

    writer.close()
    assert status_line.startswith(b"HTTP/1.1 413 ")


async def test_publish_rate_limit_is_429(limited_http: httpx.AsyncClient) -> None:
    cache = await new_cache(limited_http)
    await publish_text(limited_http, cache, "t", "first")

    response = await limited_http.post(f"/topics/{cache}/t", content="x", headers={"content-type": "text/plain"})

    assert response.status_code == 429
    assert _error_code(response) == "operations_rate_limit_exceeded"
    assert response.headers["retry-after"] == "1"


async def test_wrong_method_is_405_and_unknown_path_404(http: httpx.AsyncClient, cache: str) -> None:
    wrong_method = await http.put(f"/topics/{cache}/t")
    post_to_stream = await http.post(f"/topics/{cache}/t/events")
    unknown = await http.get(f"/topics/{cache}/t/x/y")

    assert (wrong_method.status_code, _error_code(wrong_method)) == (405, "method_not_allowed")
    assert "GET" in wrong_method.headers["allow"]
    assert post_to_stream.status_code == 405
    assert (unknown.status_code, _error_code(unknown)) == (404, "not_found")
