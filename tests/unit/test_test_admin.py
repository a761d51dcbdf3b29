"""Momento Local's test-admin API: what each request line is answered, and when the flag is allowed (no sockets)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tidings.server.config import Settings
from tidings.server.testadmin._api import answer, response


class _Port:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def actions(self) -> dict[str, Callable[[], str]]:
        return {"/block": lambda: self._do("blocked"), "/unblock": lambda: self._do("unblocked")}

    def _do(self, what: str) -> str:
        self.calls.append(what)
        return what


@pytest.mark.parametrize(
    ("request_line", "expected", "calls"),
    [
        (b"GET /block HTTP/1.1", (200, "blocked"), ["blocked"]),
        (b"GET /unblock?now=1 HTTP/1.1", (200, "unblocked"), ["unblocked"]),
        (b"HEAD /block HTTP/1.0", (405, "/block takes GET"), []),
        (b"POST /block HTTP/1.1", (405, "/block takes GET"), []),
        (b"GET /bl HTTP/1.1", (404, "unknown path /bl; this is the test-admin API: GET /block, GET /unblock"), []),
        (b"GET /block", (400, "bad request"), []),
        (b"\xff\xfe", (400, "bad request"), []),
    ],
    ids=["block", "unblock-with-query", "head", "post", "unknown-path", "no-version", "garbage"],
)
def test_answer_runs_only_a_get_of_a_known_path(
    request_line: bytes, expected: tuple[int, str], calls: list[str]
) -> None:
    port = _Port()

    result = answer(request_line, port.actions())

    assert result == expected
    assert port.calls == calls


def test_response_to_a_head_runs_nothing_and_has_no_body() -> None:
    port = _Port()

    answered = response(b"HEAD /block HTTP/1.1\r\nHost: localhost\r\n\r\n", port.actions())

    head, _, body = answered.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0] == b"HTTP/1.1 405 Method Not Allowed"
    assert b"Allow: GET" in head.split(b"\r\n")
    assert body == b""
    assert port.calls == []


def test_response_to_a_get_runs_the_action_and_says_what_it_did() -> None:
    port = _Port()

    answered = response(b"GET /unblock HTTP/1.1\r\nHost: localhost\r\n\r\n", port.actions())

    assert answered.startswith(b"HTTP/1.1 200 OK\r\n")
    assert answered.endswith(b"Content-Length: 10\r\nConnection: close\r\n\r\nunblocked\n")
    assert port.calls == ["unblocked"]


def test_settings_refuse_the_test_admin_port_without_fault_injection() -> None:
    with pytest.raises(ValueError, match=r"^--test-admin-port needs --fault-injection"):
        Settings(test_admin_port=9090)


def test_settings_refuse_the_test_admin_port_with_several_workers() -> None:
    with pytest.raises(ValueError, match="--workers above 1"):
        Settings(test_admin_port=9090, fault_injection=True, workers=2, redis_url="redis://127.0.0.1:6379")


def test_settings_accept_the_test_admin_port_with_fault_injection() -> None:
    settings = Settings(test_admin_port=0, fault_injection=True)

    assert settings.test_admin_port == 0
