"""The server log never holds a credential, even at debug, and says which calls it refused (issue 16 item 4).

Each test starts a real server with ``--log-level debug`` and searches its whole log afterwards: for the API key
and its secret part, minted tokens, a bad token, a webhook's signing secret and a secret in its URL.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Final

import grpc
import grpc.aio
import httpx
import pytest
from momento_wire_types import cachepubsub_pb2, cachepubsub_pb2_grpc, permissionmessages_pb2

from tests._redis import RedisServer
from tests.integration._receiver import Receiver
from tests.integration._server import ServerProcess
from tests.integration.test_auth import Wire, admin_key, code_of, topic_permissions
from tidings.server.auth._keys import split_api_key

StartServer = Callable[..., ServerProcess]
TRANSPORTS: Final = ["h2", "grpcio"]
BAD_TOKEN: Final = "not-a-token-but-a-secret-1f2e3d4c5b6a"
QUERY_SECRET: Final = "q-secret-0b9c8d7e6f5a"
PEER: Final = r"from (ipv4:)?127\.0\.0\.1:\d+"
REDIS_PASSWORD: Final = "redis-password-9a8b7c"


def _debug_server(start_server: StartServer, transport: str = "h2") -> ServerProcess:
    return start_server(
        "--log-level", "debug", "--require-auth", "--grpc-transport", transport, "--create-cache", "c",
        "--http-long-poll-timeout", "0.5",
    )  # fmt: skip


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_debug_log_holds_no_credential_used_over_grpc_http_or_webhooks(
    start_server: StartServer, transport: str
) -> None:
    # Arrange
    server = _debug_server(start_server, transport)
    admin = admin_key(server)
    parts = split_api_key(admin)
    assert parts is not None
    with Receiver() as receiver:
        # Act: the admin key and a minted token over gRPC, the key over HTTP (header and query), a webhook
        async with grpc.aio.insecure_channel(server.endpoint) as channel:
            wire = Wire(channel)
            await wire.publish(admin, "c", "t")
            subscription = await wire.subscribed(admin, "c", "t")
            subscription.cancel()
            minted = await wire.mint(admin, topic_permissions(permissionmessages_pb2.TopicReadWrite))
            await wire.publish(minted.api_key, "c", "t")
            refused = await code_of(wire.publish(BAD_TOKEN, "c", "t"))
        async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as http:
            hook = await http.put(
                "/webhooks/c/hook",
                json={"topic": "events", "url": f"{receiver.url}?secret={QUERY_SECRET}"},
                headers=_bearer(admin),
            )
            text = {"content-type": "text/plain"}
            published = await http.post("/topics/c/events", content="m", headers={**_bearer(admin), **text})
            polled = await http.get("/topics/c/t", params={"token": admin})
            unauthorized = await http.post("/topics/c/t", content="m", headers={**_bearer(BAD_TOKEN), **text})
        (delivery,) = await asyncio.to_thread(receiver.wait_for, 1)
    server.stop()
    log = "".join(server.log)

    # Assert: every call did what it should, and left no secret behind
    assert refused == grpc.StatusCode.UNAUTHENTICATED
    assert (hook.status_code, published.status_code, polled.status_code) == (200, 204, 200)
    assert unauthorized.status_code == 401
    assert delivery.path == "/hook"
    secrets = {
        "admin key": admin,
        "admin key's secret": parts[1],
        "minted token": minted.api_key,
        "bad token": BAD_TOKEN,
        "webhook signing secret": hook.json()["secret"],
        "webhook URL's query": QUERY_SECRET,
    }
    assert [name for name, secret in secrets.items() if secret in log] == [], log
    assert "hpack" not in log
    assert "HTTP Request" not in log
    assert "answered UNAUTHENTICATED" in log  # the refusals were logged (at debug), without the tokens


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_refused_grpc_calls_are_logged_at_debug_with_peer_and_reason(start_server: StartServer, transport: str) -> None:
    # Arrange
    server = _debug_server(start_server, transport)
    admin = admin_key(server)
    calls = {
        "missing cache": (admin, "nope"),
        "bad token": (BAD_TOKEN, "c"),
        "no token": (None, "c"),
    }
    codes = {}

    # Act
    with grpc.insecure_channel(server.endpoint) as channel:
        stub = cachepubsub_pb2_grpc.PubsubStub(channel)
        for name, (token, cache) in calls.items():
            request = cachepubsub_pb2._PublishRequest(
                cache_name=cache, topic="t", value=cachepubsub_pb2._TopicValue(text="v")
            )
            with pytest.raises(grpc.RpcError) as error:
                stub.Publish(request, metadata=(("authorization", token),) if token else None, timeout=10)
            codes[name] = error.value.code()
    refused = rf"DEBUG tidings\.server\.grpc(\.h2)?: \S+ {PEER} answered"  # h2 refuses bad tokens at HEADERS
    not_found = server.wait_for_log(rf"{refused} NOT_FOUND: cache not found")
    unauthenticated = server.wait_for_log(rf"{refused} UNAUTHENTICATED: ", 2)

    # Assert
    assert codes == {
        "missing cache": grpc.StatusCode.NOT_FOUND,
        "bad token": grpc.StatusCode.UNAUTHENTICATED,
        "no token": grpc.StatusCode.UNAUTHENTICATED,
    }
    assert "'nope'" in not_found[0].string
    assert {"invalid token", "this server requires a token in the authorization header"} == {
        match.string.rstrip().rsplit("UNAUTHENTICATED: ", 1)[1] for match in unauthenticated
    }
    assert BAD_TOKEN not in "".join(server.log)
    assert admin not in "".join(server.log)


def test_refused_http_requests_are_logged_at_debug_with_peer_and_reason(start_server: StartServer) -> None:
    # Arrange
    server = _debug_server(start_server)
    admin = admin_key(server)
    text = {"content-type": "text/plain"}
    requests = {
        401: ("/topics/c/t", {**_bearer(BAD_TOKEN), **text}),
        403: ("/topics/c/t", {**_bearer(admin), **text, "origin": "http://elsewhere.example"}),
        404: ("/topics/nope/t", {**_bearer(admin), **text}),
        415: ("/topics/c/t", {**_bearer(admin), "content-type": "image/png"}),
        421: ("/topics/c/t", {**_bearer(admin), **text, "host": "elsewhere.example"}),
    }

    # Act
    with httpx.Client(base_url=server.http_url, timeout=10) as http:
        statuses = [
            http.post(f"{path}?token_hint={QUERY_SECRET}", content="m", headers=headers).status_code
            for path, headers in requests.values()
        ]
    logged = {
        status: server.wait_for_log(rf"DEBUG tidings\.server\.http: POST {path} {PEER} answered {status} \w+: .+")
        for status, (path, _) in requests.items()
    }
    log = "".join(server.log)

    # Assert
    assert statuses == list(requests)
    assert list(logged) == list(requests)
    assert "answered 401 unauthenticated: invalid token" in log
    assert "answered 403 permission_denied: cross-origin request from http://elsewhere.example refused" in log
    assert "answered 404 not_found: cache not found: 'nope'" in log
    assert "answered 415 unsupported_media_type: " in log
    assert "answered 421 misdirected_request: " in log
    assert BAD_TOKEN not in log
    assert admin not in log
    assert QUERY_SECRET not in log  # the query string is not logged


def test_webhook_delivery_leaves_no_line_at_info(start_server: StartServer) -> None:
    # Arrange
    server = start_server("--create-cache", "c")
    with Receiver() as receiver, httpx.Client(base_url=server.http_url, timeout=10) as http:
        put = http.put("/webhooks/c/hook", json={"topic": "events", "url": f"{receiver.url}?secret={QUERY_SECRET}"})
        before = len(server.log)

        # Act
        for value in ("m1", "m2", "m3"):
            http.post("/topics/c/events", content=value, headers={"content-type": "text/plain"})
        receiver.wait_for(3)
        server.stop()  # every line the deliveries caused is logged by now

    # Assert
    assert put.status_code == 200
    shutdown = next(i for i, line in enumerate(server.log) if "tidings shutting down" in line)
    assert server.log[before:shutdown] == []
    assert QUERY_SECRET not in "".join(server.log)


def test_redis_password_is_not_logged_when_the_connection_breaks(tmp_path: Path) -> None:
    # Arrange: a Redis with a password, in the URL as redis-py takes it
    redis = RedisServer(tmp_path / "redis", ("--requirepass", REDIS_PASSWORD)).start()
    url = f"redis://:{REDIS_PASSWORD}@127.0.0.1:{redis.port}"
    server = ServerProcess(tmp_path / "node", ("--redis-url", url, "--log-level", "debug")).start()
    try:
        # Act: the connections break and reconnecting fails, which is logged with the node's address
        redis.stop()
        server.wait_for_log("connecting to Redis is failing")
        redis.start()
        server.wait_for_log("connecting to Redis works again")
    finally:
        server.stop()
        redis.stop()

    # Assert
    log = "".join(server.log)
    assert f"127.0.0.1:{redis.port}" in log
    assert REDIS_PASSWORD not in log
