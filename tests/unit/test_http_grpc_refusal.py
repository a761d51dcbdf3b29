"""A gRPC client on the HTTP port gets its call answered in gRPC (``server/http/_grpc_refusal.py``), fed byte
for byte as the HTTP server feeds it."""

from __future__ import annotations

import ast
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import pytest

from tidings.server.http._grpc_refusal import MAX_INPUT, GrpcRefusal

from ._support import grpc_request_headers

ROOT = Path(__file__).resolve().parents[2]

MESSAGE = "this is tidings' HTTP port; gRPC is served on port 8080 (100% sure, ✓)"


def _client() -> h2.connection.H2Connection:
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    client.initiate_connection()
    return client


def _call(client: h2.connection.H2Connection) -> tuple[bytes, int]:
    """A gRPC client's first bytes: its preface and settings, then a call's headers and its message; and where
    the headers end."""
    stream_id = client.get_next_available_stream_id()
    client.send_headers(stream_id, grpc_request_headers("Publish", authority="localhost:8081"))
    through_headers = client.data_to_send()
    client.send_data(stream_id, b"\x00\x00\x00\x00\x00", end_stream=True)
    return through_headers + client.data_to_send(), len(through_headers)


@pytest.mark.parametrize("split", [None, 1, 16, 24, 40], ids=["whole", "at-1", "in-preface", "after-preface", "at-40"])
def test_grpc_refusal_answers_a_call_with_unimplemented_naming_the_grpc_port(split: int | None) -> None:
    client = _client()
    request, _ = _call(client)
    refusal = GrpcRefusal(MESSAGE)

    chunks = [request] if split is None else [request[:split], request[split:]]
    sent = b"".join(refusal.receive(chunk) for chunk in chunks)
    events = client.receive_data(sent)

    assert refusal.finished
    [response] = [event for event in events if isinstance(event, h2.events.ResponseReceived)]
    headers = dict(response.headers)
    assert headers[b":status"] == b"200"
    assert headers[b"content-type"] == b"application/grpc"
    assert headers[b"grpc-status"] == b"12"
    assert (
        headers[b"grpc-message"] == b"this is tidings' HTTP port; gRPC is served on port 8080 (100%25 sure, %E2%9C%93)"
    )
    assert any(isinstance(event, h2.events.StreamEnded) for event in events)
    [goaway] = [event for event in events if isinstance(event, h2.events.ConnectionTerminated)]
    assert goaway.error_code == 0


def test_grpc_refusal_answers_every_byte_split_of_a_call() -> None:
    for split in range(1, len(_call(_client())[0])):
        client = _client()
        request, headers_end = _call(client)
        refusal = GrpcRefusal(MESSAGE)

        first = refusal.receive(request[:split])
        answered_early = refusal.finished
        rest = refusal.receive(request[split:])
        events = client.receive_data(first + rest)

        assert answered_early == (split >= headers_end), split  # answered as soon as the call's headers are in
        assert refusal.finished, split
        assert any(isinstance(event, h2.events.ResponseReceived) for event in events), split


def test_grpc_refusal_waits_for_a_call_but_gives_up_on_a_peer_that_sends_none() -> None:
    client = _client()
    refusal = GrpcRefusal(MESSAGE)
    fed = len(opening := client.data_to_send())

    answered = refusal.receive(opening)
    waiting = not refusal.finished
    while not refusal.finished:  # valid HTTP/2 (pings), but never a call
        client.ping(b"12345678")
        pings = client.data_to_send()
        fed += len(pings)
        refusal.receive(pings)

    assert answered  # the server's preface, at once
    assert waiting
    assert MAX_INPUT < fed <= MAX_INPUT + 17  # one PING frame past the bound


def test_grpc_refusal_ends_at_once_when_the_rest_is_not_http2() -> None:
    refusal = GrpcRefusal(MESSAGE)

    refusal.receive(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n")  # what the HTTP server recognises, then junk

    assert refusal.finished


def test_http_port_imports_nothing_of_the_h2_transport() -> None:
    # The HTTP server answers in gRPC with the shared framing (grpc/_framing.py), not the h2 transport's privates.
    imported = {
        f"{node.module} ({path.name})"
        for path in (ROOT / "src" / "tidings" / "server" / "http").glob("*.py")
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tidings.server.grpc._h2")
    }

    assert imported == set()
