"""The webhook client against scripted receivers on loopback: kept-alive connections, receivers that close, odd
answers, deadlines, https, and the private-address guard."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import uvloop

from tidings.server.webhooks import WebhookSender
from tidings.server.webhooks._http import target_of
from tidings.server.webhooks._retry import Outcome, Verdict

from ..integration._tls import self_signed_certificate

OK = b"HTTP/1.1 204 No Content\r\n\r\n"
DELIVERED = Outcome(Verdict.DELIVERED)
# A script answers one request on one connection: what to write back, or None to close without answering.
Script = Callable[[int, int, bytes], Awaitable[bytes | None]]


class ScriptedReceiver:
    """A raw HTTP/1.1 server on a free loopback port: ``script(connection, request, head)`` answers each request."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.connections = 0
        self.requests: list[bytes] = []
        self.port = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        connection, count = self.connections, 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                body = await reader.readexactly(length)
                self.requests.append(head + body)
                count += 1
                answer = await self.script(connection, count, head)
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[ScriptedReceiver]]]:
    servers: list[asyncio.Server] = []

    async def start(script: Script, tls: ssl.SSLContext | None = None) -> ScriptedReceiver:
        receiver = ScriptedReceiver(script)
        server = await asyncio.start_server(receiver._serve, "127.0.0.1", 0, ssl=tls)
        servers.append(server)
        receiver.port = server.sockets[0].getsockname()[1]
        return receiver

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


def _answer(*answers: bytes | None) -> Script:
    """Answer the n-th request (over all connections) with ``answers[n]``, then with OK."""
    sequence = iter(answers)

    async def script(connection: int, request: int, head: bytes) -> bytes | None:
        return next(sequence, OK)

    return script


async def _post(
    sender: WebhookSender, receiver: ScriptedReceiver, times: int = 1, scheme: str = "http"
) -> list[Outcome]:
    url = f"{scheme}://127.0.0.1:{receiver.port}/hook?x=1"
    return [await sender.post(url, b'{"n":1}', "sig") for _ in range(times)]


async def test_webhook_sender_keeps_one_connection_alive_for_successive_posts(serve) -> None:
    receiver = await serve(_answer())
    sender = WebhookSender(allow_private=True)

    outcomes = await _post(sender, receiver, times=3)

    assert outcomes == [DELIVERED] * 3
    assert receiver.connections == 1
    head = receiver.requests[0].split(b"\r\n\r\n")[0].decode().split("\r\n")
    assert head[0] == "POST /hook?x=1 HTTP/1.1"
    assert {"content-type: application/json", "momento-signature: sig", "content-length: 7"} <= set(head)
    assert any(line.startswith("user-agent: tidings-webhooks/") for line in head)
    await sender.close()


async def test_webhook_sender_opens_a_fresh_connection_after_the_receiver_closed_one(serve) -> None:
    async def close_after_each(connection: int, request: int, head: bytes) -> bytes | None:
        return OK if request == 1 else None

    receiver = await serve(close_after_each)
    sender = WebhookSender(allow_private=True)

    first = await _post(sender, receiver)
    await asyncio.sleep(0.05)  # the idle connection is still kept by the sender; the receiver ends it
    second = await _post(sender, receiver)

    assert first == second == [DELIVERED]
    assert receiver.connections >= 2
    await sender.close()


async def test_webhook_sender_retries_once_on_a_fresh_connection_when_a_kept_one_closes_unanswered(serve) -> None:
    async def close_the_second_request(connection: int, request: int, head: bytes) -> bytes | None:
        return None if (connection, request) == (1, 2) else OK

    receiver = await serve(close_the_second_request)
    sender = WebhookSender(allow_private=True)

    outcomes = await _post(sender, receiver, times=2)

    assert outcomes == [DELIVERED, DELIVERED]
    assert (receiver.connections, len(receiver.requests)) == (2, 3)  # at least once: the unanswered one again
    await sender.close()


async def test_webhook_sender_reports_a_fresh_connection_closed_unanswered_without_retrying(serve) -> None:
    receiver = await serve(_answer(None))
    sender = WebhookSender(allow_private=True)

    outcomes = await _post(sender, receiver)

    assert outcomes == [Outcome(Verdict.RETRY, "connection")]
    assert len(receiver.requests) == 1
    await sender.close()


async def test_webhook_sender_drops_a_connection_whose_answer_is_too_long(serve) -> None:
    oversized = b"HTTP/1.1 500 Oops\r\nContent-Length: 100000\r\n\r\n" + b"x" * 100_000
    receiver = await serve(_answer(oversized))
    sender = WebhookSender(allow_private=True)

    outcomes = await _post(sender, receiver, times=2)

    assert outcomes == [Outcome(Verdict.RETRY, "status_5xx"), DELIVERED]
    assert receiver.connections == 2
    await sender.close()


async def test_webhook_sender_reads_a_chunked_answer_and_keeps_the_connection(serve) -> None:
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
    receiver = await serve(_answer(chunked, chunked))
    sender = WebhookSender(allow_private=True)

    outcomes = await _post(sender, receiver, times=2)

    assert outcomes == [DELIVERED, DELIVERED]
    assert receiver.connections == 1
    await sender.close()


@pytest.mark.parametrize(
    ("answer", "outcome"),
    [
        (
            b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n",
            Outcome(Verdict.GIVE_UP, "status_3xx"),
        ),
        (b"HTTP/1.1 429 Slow Down\r\nContent-Length: 0\r\n\r\n", Outcome(Verdict.RETRY, "status_429")),
        (b"nonsense\r\n\r\n", Outcome(Verdict.RETRY, "protocol")),
    ],
    ids=["redirect-not-followed", "429", "malformed"],
)
async def test_webhook_sender_maps_answers_to_outcomes(serve, answer: bytes, outcome: Outcome) -> None:
    receiver = await serve(_answer(answer))
    sender = WebhookSender(allow_private=True)

    outcomes = await _post(sender, receiver)

    assert outcomes == [outcome]
    assert len(receiver.requests) == 1
    await sender.close()


async def test_webhook_sender_gives_an_attempt_its_deadline(serve) -> None:
    async def never(connection: int, request: int, head: bytes) -> bytes | None:
        await asyncio.Event().wait()
        return None

    receiver = await serve(never)
    sender = WebhookSender(allow_private=True, timeout=0.2)

    started = asyncio.get_running_loop().time()
    outcomes = await asyncio.wait_for(_post(sender, receiver), 5)
    elapsed = asyncio.get_running_loop().time() - started

    assert outcomes == [Outcome(Verdict.RETRY, "timeout")]
    assert 0.15 <= elapsed < 0.3  # expired within a tick (0.02 s) before the deadline, never long after
    await sender.close()


async def test_webhook_sender_reports_a_refused_connection() -> None:
    sender = WebhookSender(allow_private=True)

    outcome = await sender.post("http://127.0.0.1:9/hook", b"{}", "sig")

    assert outcome == Outcome(Verdict.RETRY, "connection")
    await sender.close()


async def test_webhook_sender_refuses_private_addresses_unless_allowed(serve) -> None:
    receiver = await serve(_answer())
    sender = WebhookSender()

    outcomes = await _post(sender, receiver)

    assert outcomes == [Outcome(Verdict.GIVE_UP, "private_address")]
    assert receiver.connections == 0
    await sender.close()


async def test_webhook_sender_posts_over_https_verifying_the_receiver(serve, tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    receiver = await serve(_answer(), tls=tls)
    trusting = WebhookSender(allow_private=True, ssl_context=ssl.create_default_context(cafile=str(cert)))
    default = WebhookSender(allow_private=True)

    trusted = await _post(trusting, receiver, times=2, scheme="https")
    untrusted = await _post(default, receiver, scheme="https")

    assert trusted == [DELIVERED, DELIVERED]
    assert untrusted == [Outcome(Verdict.RETRY, "connection")]
    assert receiver.connections == 1  # the untrusted handshake never reached a request
    await trusting.close()
    await default.close()


async def test_webhook_sender_refuses_use_after_close() -> None:
    sender = WebhookSender(allow_private=True)
    await sender.close()

    with pytest.raises(RuntimeError):
        await sender.post("http://127.0.0.1:9/hook", b"{}", "sig")


@pytest.mark.parametrize(
    ("url", "origin", "request_line", "host"),
    [
        (
            "http://[::1]:8080/a b?x=é&y=1#frag",
            ("http", "::1", 8080),
            "POST /a%20b?x=%C3%A9&y=1 HTTP/1.1",
            "[::1]:8080",
        ),
        (
            "https://bücher.example/hook",
            ("https", "xn--bcher-kva.example", 443),
            "POST /hook HTTP/1.1",
            "xn--bcher-kva.example",
        ),
        ("http://h.example", ("http", "h.example", 80), "POST / HTTP/1.1", "h.example"),
        ("https://h.example/p%20q?a=%2F", ("https", "h.example", 443), "POST /p%20q?a=%2F HTTP/1.1", "h.example"),
    ],
    ids=["ipv6-and-escapes", "idna", "no-path", "kept-escapes"],
)
def test_target_of_builds_the_request_head_once_per_url(
    url: str, origin: tuple[str, str, int], request_line: str, host: str
) -> None:
    target = target_of(url, "tidings-webhooks/1")

    lines = target.head.decode().split("\r\n")
    assert target.origin == origin
    assert lines[:3] == [request_line, f"host: {host}", "user-agent: tidings-webhooks/1"]
    assert target.head.endswith(b"\r\nmomento-signature: ")


def test_webhook_sender_works_on_uvloop_as_the_server_runs_it() -> None:
    async def scenario() -> tuple[list[Outcome], int, Outcome]:
        release, released = asyncio.Event(), asyncio.Event()

        async def answer_or_hang(connection: int, request: int, head: bytes) -> bytes | None:
            if request == 3:  # hangs past the sender's timeout, then closes its connection at the end
                await release.wait()
                released.set()
                return None
            return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"

        receiver = ScriptedReceiver(answer_or_hang)
        server = await asyncio.start_server(receiver._serve, "127.0.0.1", 0)
        receiver.port = server.sockets[0].getsockname()[1]
        sender = WebhookSender(allow_private=True, timeout=0.3)
        try:
            delivered = await _post(sender, receiver, times=2)
            timed_out = (await _post(sender, receiver))[0]
        finally:
            await sender.close()
            release.set()
            if len(receiver.requests) >= 3:  # its handler closed the connection (no task left for the loop's end)
                await released.wait()
            server.close()
        return delivered, receiver.connections, timed_out

    delivered, connections, timed_out = uvloop.run(scenario())

    assert (delivered, connections) == ([DELIVERED, DELIVERED], 1)
    assert timed_out == Outcome(Verdict.RETRY, "timeout")


async def test_webhook_sender_ends_the_back_off_of_every_webhook_of_a_receiver_once_one_delivery_succeeds(
    serve,
) -> None:
    # Two webhooks of one receiver back off (for an hour) after a failure; the next delivered POST to that
    # receiver ends both waits at once, while a wait for another receiver runs on.
    receiver = await serve(_answer(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n"))
    other = await serve(_answer())
    sender = WebhookSender(allow_private=True)
    url, elsewhere = f"http://127.0.0.1:{receiver.port}/a", f"http://127.0.0.1:{other.port}/b"
    assert (await sender.post(url, b"{}", "sig")).verdict is Verdict.RETRY
    await sender.post(elsewhere, b"{}", "sig")
    waits = [asyncio.create_task(sender.back_off(target, 3600)) for target in (url, url + "?second", elsewhere)]
    await asyncio.sleep(0)

    delivered = await sender.post(url, b"{}", "sig")
    await asyncio.wait_for(asyncio.gather(waits[0], waits[1]), 1)

    assert delivered == DELIVERED
    assert not waits[2].done()
    waits[2].cancel()
    await sender.close()
