"""gRPC-web on the HTTP port (issue 19): Momento's web SDK (``@gomomento/sdk-web`` in jsdom, driven by
``tests/node/web_interop.mjs``) against a real server for every service, and raw gRPC-web requests (binary mode,
trailers-only errors, deadlines, CORS preflights) with httpx.

One server for the module (``--require-auth``, the page's origin in ``--cors-origins``); independent Node
processes run concurrently.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
import struct
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc.aio
import httpx
import pytest
from momento_wire_types import cachepubsub_pb2 as pb

from tests.integration._server import ServerProcess

WEB_INTEROP = Path(__file__).parents[1] / "node" / "web_interop.mjs"
ORIGIN = "http://localhost"
CACHE = "web"
HTTP_TIMEOUT = 1
SDK_HEADERS = "authorization, agent, runtime-version, cache, x-user-agent, x-grpc-web, grpc-timeout, content-type"


@pytest.fixture(scope="module")
def web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(
        tmp_path_factory.mktemp("grpc-web"),
        (
            *("--require-auth", "--cors-origins", ORIGIN, "--create-cache", CACHE, "--heartbeat-interval", "1"),
            # Short HTTP timeouts: a live stream outlasts both (test_stream_outlasts_the_http_timeouts...).
            *("--http-idle-timeout", str(HTTP_TIMEOUT), "--request-timeout", str(HTTP_TIMEOUT)),
        ),
    ).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def admin(web_server: ServerProcess) -> str:
    """The admin key in Momento's ``{endpoint, api_key}`` envelope, which the web SDK parses."""
    key = (web_server.data_dir / "admin.key").read_text().strip()
    return base64.b64encode(json.dumps({"endpoint": web_server.host, "api_key": key}).encode()).decode()


async def web(server: ServerProcess, scenario: str, *args: str, token: str | None = None) -> list[dict[str, Any]]:
    """Run a web_interop scenario to its end; its JSON lines (``exit`` added: the exit code)."""
    command = ["node", str(WEB_INTEROP), scenario, "--endpoint", server.http_url, "--origin", ORIGIN, *args]
    if token is not None:
        command += ["--token", token]
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode in (0, 1), out.decode() + err.decode()
    return [*(json.loads(line) for line in out.decode().splitlines()), {"exit": process.returncode}]


class Subscriber:
    """A running ``web_interop.mjs subscribe --stdin-commands``: its JSON lines, as they arrive."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def next_line(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        raw = await asyncio.wait_for(self.process.stdout.readline(), 30)
        assert raw, "the web subscriber exited early"
        line: dict[str, Any] = json.loads(raw)
        return line

    async def wait_for(self, key: str) -> dict[str, Any]:
        while key not in (line := await self.next_line()):
            pass
        return line

    async def command(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")
        await self.process.stdin.drain()


@asynccontextmanager
async def subscriber(server: ServerProcess, token: str, topic: str, *args: str) -> AsyncIterator[Subscriber]:
    command = ["node", str(WEB_INTEROP), "subscribe", "--endpoint", server.http_url, "--origin", ORIGIN]
    command += ["--token", token, "--cache", CACHE, "--topic", topic, "--stdin-commands", "--seconds", "60", *args]
    process = await asyncio.create_subprocess_exec(
        *command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    try:
        sub = Subscriber(process)
        await sub.wait_for("ready")
        yield sub
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


def subscriptions(server: ServerProcess, admin_key: str) -> float:
    metrics = httpx.get(f"{server.http_url}/metrics", headers={"authorization": admin_key}, timeout=10).text
    [line] = [line for line in metrics.splitlines() if line.startswith("tidings_subscriptions ")]
    return float(line.split()[1])


def raw_admin(server: ServerProcess) -> str:
    return (server.data_dir / "admin.key").read_text().strip()


# ---- the web SDK


async def test_web_sdk_ping_caches_and_webhooks(web_server: ServerProcess, admin: str) -> None:
    ping, caches, hooks = await asyncio.gather(
        web(web_server, "ping"),
        web(web_server, "cache", "--cache", "web-made", token=admin),
        web(
            web_server,
            "webhook",
            *("--cache", CACHE, "--webhook", "hook", "--topic", "t", "--url", "https://example.com/hook"),
            *("--action", "put", "--action", "list", "--action", "delete", "--action", "list"),
            token=admin,
        ),
    )

    assert ping == [{"ping": "ok"}, {"exit": 0}]
    assert caches[-1] == {"exit": 0}, caches
    assert caches[:2] == [{"create_cache": "success"}, {"create_cache": "already_exists"}]
    assert "web-made" in caches[2]["list_caches"]
    assert hooks[-1] == {"exit": 0}, hooks
    put, listed, deleted, empty = hooks[:-1]
    assert put["put"]["secret"]
    assert listed == {"list": [{"cache": CACHE, "name": "hook", "topic": "t", "url": "https://example.com/hook"}]}
    assert (deleted, empty) == ({"delete": {}}, {"list": []})


async def test_web_sdk_publishes_and_subscribes_text_binary_and_4000_bytes(
    web_server: ServerProcess, admin: str
) -> None:
    async with subscriber(web_server, admin, "values", "--count", "3") as sub:
        for args in (("--count", "1"), ("--binary",), ("--size", "4000")):
            assert (await web(web_server, "publish", "--cache", CACHE, "--topic", "values", *args, token=admin))[
                -1
            ] == {"exit": 0}
        items = [(await sub.wait_for("item"))["item"] for _ in range(3)]

    assert [(item["value"], item["binary"]) for item in items] == [
        ("msg-1", False),
        (base64.b64encode(b"msg-1").decode(), True),
        ("x" * 4000, False),
    ]
    assert [item["sequence_number"] for item in items] == [1, 2, 3]


async def test_disposable_tokens_from_the_web_sdk_carry_their_scope_and_id(
    web_server: ServerProcess, admin: str
) -> None:
    scoped = ("--cache", CACHE, "--topic", "room")
    reader, writer = await asyncio.gather(
        web(web_server, "token", *scoped, "--scope", "subscribe-only", "--token-id", "reader", token=admin),
        web(web_server, "token", *scoped, "--scope", "publish-subscribe", "--token-id", "alice", token=admin),
    )
    reader_token, writer_token = reader[0]["token"]["auth_token"], writer[0]["token"]["auth_token"]

    async with subscriber(web_server, reader_token, "room", "--count", "1") as sub:
        refused, published = await asyncio.gather(
            web(web_server, "publish", *scoped, token=reader_token),
            web(web_server, "publish", *scoped, token=writer_token),
        )
        item = (await sub.wait_for("item"))["item"]

    assert refused[0]["publish_error"]["code"] == "PERMISSION_ERROR", refused
    assert published == [{"published": 1}, {"exit": 0}]
    assert (item["value"], item["token_id"]) == ("msg-1", "alice")


async def test_web_sdk_errors_map_as_over_grpc(web_server: ServerProcess, admin: str) -> None:
    envelope = json.loads(base64.b64decode(admin))
    forged = base64.b64encode(json.dumps({**envelope, "api_key": envelope["api_key"][:-4] + "AAAA"}).encode())
    unknown, oversized, unauthenticated = await asyncio.gather(
        web(web_server, "publish", "--cache", "no-such-cache", token=admin),
        web(web_server, "publish", "--cache", CACHE, "--size", "5000", token=admin),
        web(web_server, "publish", "--cache", CACHE, token=forged.decode()),
    )

    assert unknown[0]["publish_error"]["code"] == "NOT_FOUND_ERROR", unknown
    assert oversized[0]["publish_error"]["code"] == "LIMIT_EXCEEDED_ERROR", oversized
    assert oversized[0]["publish_error"]["grpc_metadata"]["err"] == "request_size_limit_exceeded"
    assert unauthenticated[0]["publish_error"]["code"] == "AUTHENTICATION_ERROR", unauthenticated


async def test_unsubscribe_ends_the_server_side_subscription_at_once(web_server: ServerProcess, admin: str) -> None:
    key = raw_admin(web_server)
    before = subscriptions(web_server, key)
    async with subscriber(web_server, admin, "leaving") as sub:
        assert subscriptions(web_server, key) == before + 1
        await sub.command("unsubscribe")
        await sub.wait_for("unsubscribed")
        deadline = time.monotonic() + 1.0
        while (now := subscriptions(web_server, key)) != before and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        assert now == before


# ---- raw gRPC-web


def frame(message: bytes, flag: int = 0) -> bytes:
    return struct.pack(">BI", flag, len(message)) + message


def frames(body: bytes) -> list[tuple[int, bytes]]:
    """(flag, payload) of each frame in a response body."""
    out = []
    while body:
        flag, length = struct.unpack(">BI", body[:5])
        out.append((flag, body[5 : 5 + length]))
        body = body[5 + length :]
    return out


def headers(server: ServerProcess, mode: str = "application/grpc-web+proto", **extra: str) -> dict[str, str]:
    return {"content-type": mode, "x-grpc-web": "1", "authorization": raw_admin(server), **extra}


def raw_subscription(
    client: httpx.AsyncClient, server: ServerProcess, topic: str
) -> contextlib.AbstractAsyncContextManager[httpx.Response]:
    """A binary-mode gRPC-web Subscribe to ``topic`` of ``CACHE``, its response body unread."""
    request = pb._SubscriptionRequest(cache_name=CACHE, topic=topic).SerializeToString()
    return client.stream(
        "POST",
        f"{server.http_url}/cache_client.pubsub.Pubsub/Subscribe",
        content=frame(request),
        headers={"content-type": "application/grpc-web+proto", "x-grpc-web": "1"},
    )


def publish_request(cache: str, topic: str, value: bytes) -> bytes:
    return pb._PublishRequest(cache_name=cache, topic=topic, value=pb._TopicValue(binary=value)).SerializeToString()


def test_binary_mode_publish_answers_message_then_trailers_frame(web_server: ServerProcess) -> None:
    url = f"{web_server.http_url}/cache_client.pubsub.Pubsub/Publish"

    response = httpx.post(url, content=frame(publish_request(CACHE, "raw", b"\x00\xff")), headers=headers(web_server))

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/grpc-web+proto"
    assert frames(response.content) == [(0x00, b""), (0x80, b"grpc-status:0\r\n")]


def test_error_before_any_message_is_trailers_only(web_server: ServerProcess) -> None:
    url = f"{web_server.http_url}/cache_client.pubsub.Pubsub/Publish"
    body = base64.b64encode(frame(publish_request("no-such-cache", "raw", b"v")))

    response = httpx.post(url, content=body, headers=headers(web_server, "application/grpc-web-text"))

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/grpc-web-text+proto"
    assert response.headers["grpc-status"] == "5"
    assert "cache not found" in response.headers["grpc-message"]
    assert response.content == b""


def test_stream_outlasts_the_http_timeouts_and_ends_at_its_grpc_timeout(web_server: ServerProcess) -> None:
    url = f"{web_server.http_url}/cache_client.pubsub.Pubsub/Subscribe"
    request = pb._SubscriptionRequest(cache_name=CACHE, topic="deadline").SerializeToString()
    chunks = []

    with httpx.stream(
        "POST",
        url,
        content=base64.b64encode(frame(request)),
        headers=headers(web_server, "application/grpc-web-text", **{"grpc-timeout": f"{2 * HTTP_TIMEOUT + 1}S"}),
    ) as response:
        chunks = list(response.iter_bytes())

    text = b"".join(chunks)  # each chunk base64 on its own, padded: decode quantum by quantum
    body = b"".join(base64.b64decode(text[i : i + 4]) for i in range(0, len(text), 4))
    received = frames(body)
    kinds = [pb._SubscriptionItem.FromString(message).WhichOneof("kind") for _, message in received[:-1]]
    assert kinds == ["heartbeat"] * len(kinds)
    assert len(kinds) >= 2 * HTTP_TIMEOUT + 1  # the first, then one a second (--heartbeat-interval 1)
    assert received[-1] == (0x80, b"grpc-status:4\r\ngrpc-message:Deadline Exceeded\r\n")


def test_other_content_types_on_grpc_paths_get_the_404_of_before(web_server: ServerProcess) -> None:
    response = httpx.post(
        f"{web_server.http_url}/cache_client.Ping/Ping", content=b"{}", headers={"content-type": "application/json"}
    )

    assert response.status_code == 404


# ---- CORS


def test_preflight_from_allowed_origin_allows_what_the_sdk_sends(web_server: ServerProcess) -> None:
    response = httpx.options(
        f"{web_server.http_url}/cache_client.pubsub.Pubsub/Publish",
        headers={
            "origin": ORIGIN,
            "access-control-request-method": "POST",
            "access-control-request-headers": SDK_HEADERS,
        },
    )

    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert "POST" in response.headers["access-control-allow-methods"]
    allowed = {name.strip().lower() for name in response.headers["access-control-allow-headers"].split(",")}
    assert {name.strip() for name in SDK_HEADERS.split(",")} <= allowed


def test_other_origins_are_refused_as_by_the_http_api(web_server: ServerProcess) -> None:
    url = f"{web_server.http_url}/cache_client.pubsub.Pubsub/Publish"
    preflight = httpx.options(
        url,
        headers={
            "origin": "http://evil.example",
            "access-control-request-method": "POST",
            "access-control-request-headers": SDK_HEADERS,
        },
    )
    post = httpx.post(
        url,
        content=frame(publish_request(CACHE, "raw", b"v")),
        headers={**headers(web_server), "origin": "http://evil.example"},
    )
    exposed = httpx.post(
        url, content=frame(publish_request(CACHE, "raw", b"v")), headers={**headers(web_server), "origin": ORIGIN}
    )

    assert preflight.status_code == 400
    assert post.status_code == 403
    assert {"grpc-status", "grpc-message", "err"} <= set(exposed.headers["access-control-expose-headers"].split(", "))


# ---- a stalled browser


async def test_stalled_subscriber_gets_a_discontinuity_not_a_buffer(tmp_path: Path) -> None:
    # A gRPC-web subscriber that stops reading (its socket's receive buffer pinned small, as a frozen tab's) while
    # ~16 MB are published: the server does not queue them for it. When it reads again it gets what the cursor
    # rules give every transport: a discontinuity past the 50-message retention, then the rest in order.
    server = ServerProcess(tmp_path, ("--retention-messages", "50", "--create-cache", CACHE)).start()
    count, payload = 4000, "x" * 4000
    transport = httpx.AsyncHTTPTransport(socket_options=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)])
    try:
        async with (
            httpx.AsyncClient(transport=transport, timeout=30) as client,
            raw_subscription(client, server, "stalled") as response,
            grpc.aio.insecure_channel(server.endpoint) as channel,
        ):
            chunks = response.aiter_raw()
            body = await anext(chunks)  # the first heartbeat: subscribed
            publish = channel.unary_unary("/cache_client.pubsub.Pubsub/Publish", None, None)
            for i in range(1, count + 1):  # nothing is read meanwhile
                request_bytes = pb._PublishRequest(
                    cache_name=CACHE, topic="stalled", value=pb._TopicValue(text=f"{i}:{payload}")
                ).SerializeToString()
                await publish(request_bytes, timeout=10)
            # The tab wakes up: a normal receive buffer again, so what the kernel holds drains in a second.
            connection = response.extensions["network_stream"].get_extra_info("socket")
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
            items: list[pb._SubscriptionItem] = []
            while not items or items[-1].item.topic_sequence_number != count:
                body += await anext(chunks)
                while len(body) >= 5 and len(body) >= 5 + (length := struct.unpack(">BI", body[:5])[1]):
                    items.append(pb._SubscriptionItem.FromString(body[5 : 5 + length]))
                    body = body[5 + length :]
                items = [item for item in items if item.WhichOneof("kind") != "heartbeat"]
    finally:
        server.stop()

    gaps = [item.discontinuity for item in items if item.WhichOneof("kind") == "discontinuity"]
    numbers = [item.item.topic_sequence_number for item in items if item.WhichOneof("kind") == "item"]
    assert gaps, "the stalled subscriber fell behind the 50-message retention and must be told"
    assert len(numbers) < count // 2  # most were skipped, not queued for it
    assert numbers == sorted(set(numbers))  # in order, no duplicates
    first_gap = next(i for i, item in enumerate(items) if item.WhichOneof("kind") == "discontinuity")
    assert items[first_gap + 1].item.topic_sequence_number == gaps[0].new_topic_sequence + 1


# ---- what the gRPC port guarantees, on this port too


def test_forged_token_is_refused_before_the_body_is_sent(web_server: ServerProcess) -> None:
    # The request declares a 4,000-byte body and sends none of it: the answer comes at once, from the headers,
    # as the gRPC port answers at HEADERS; an unauthenticated caller cannot make the server hold its body.
    with socket.create_connection(("127.0.0.1", web_server.http_port), timeout=10) as connection:
        connection.sendall(
            b"POST /cache_client.pubsub.Pubsub/Publish HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/grpc-web+proto\r\nX-Grpc-Web: 1\r\nAuthorization: forged\r\n"
            b"Content-Length: 4005\r\n\r\n"
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = connection.recv(4096)
            assert chunk, "the server closed the connection without an answer"
            head += chunk

    status_line, *lines = head.split(b"\r\n\r\n")[0].decode().split("\r\n")
    fields = dict(line.lower().split(": ", 1) for line in lines)
    assert status_line == "HTTP/1.1 200 OK"
    assert fields["grpc-status"] == "16"


def test_a_host_outside_allowed_hosts_is_refused(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, ("--allowed-hosts", "tidings.test", "--create-cache", CACHE)).start()
    try:
        url = f"{server.http_url}/cache_client.pubsub.Pubsub/Publish"
        body = frame(publish_request(CACHE, "hosts", b"v"))
        web = {"content-type": "application/grpc-web+proto", "x-grpc-web": "1"}
        refused = httpx.post(url, content=body, headers={**web, "host": "elsewhere.example"})
        allowed = httpx.post(url, content=body, headers={**web, "host": "tidings.test"})
    finally:
        server.stop()

    assert refused.status_code == 421
    assert "grpc-status" not in refused.headers
    assert (allowed.status_code, frames(allowed.content)[-1]) == (200, (0x80, b"grpc-status:0\r\n"))


async def test_server_shutdown_ends_streams_with_unavailable(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, ("--create-cache", CACHE)).start()
    async with httpx.AsyncClient(timeout=30) as client, raw_subscription(client, server, "closing") as response:
        chunks = response.aiter_raw()
        body = await anext(chunks)  # the first heartbeat: subscribed
        stopping = asyncio.get_running_loop().run_in_executor(None, server.stop)
        body += b"".join([chunk async for chunk in chunks])
        assert await stopping == 0

    received = frames(body)
    assert received[0][0] == 0x00
    assert received[-1] == (0x80, b"grpc-status:14\r\ngrpc-message:server is shutting down\r\n")
