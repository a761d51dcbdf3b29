"""``tidings webhook put|list|delete|secret|rotate`` end to end, as subprocesses against a real server."""

from __future__ import annotations

from tests.integration._server import ServerProcess
from tests.integration.sdk.test_cli import tidings


def test_webhook_commands_manage_a_webhook(server: ServerProcess, cache: str) -> None:
    # Act
    put = tidings(
        "webhook", "put", cache, "hook", "--topic", "t", "--url", "https://example.test/in", endpoint=server.endpoint
    )
    listed = tidings("webhook", "list", cache, endpoint=server.endpoint)
    secret = tidings("webhook", "secret", cache, "hook", endpoint=server.endpoint)
    rotated = tidings("webhook", "rotate", cache, "hook", endpoint=server.endpoint)
    deleted = tidings("webhook", "delete", cache, "hook", endpoint=server.endpoint)
    empty = tidings("webhook", "list", cache, endpoint=server.endpoint)

    # Assert
    for result in (put, listed, secret, rotated, deleted, empty):
        assert result.returncode == 0, result.stderr
    assert put.stdout.strip() == secret.stdout.strip() != ""
    assert rotated.stdout.strip() not in ("", put.stdout.strip())
    assert listed.stdout == "hook\tt\thttps://example.test/in\n"
    assert empty.stdout == ""


def test_webhook_put_reports_a_bad_url_in_one_line(server: ServerProcess, cache: str) -> None:
    # Act
    result = tidings("webhook", "put", cache, "hook", "--topic", "t", "--url", "ftp://x/", endpoint=server.endpoint)

    # Assert
    assert result.returncode == 1
    assert result.stderr.startswith("Error: put failed: INVALID_ARGUMENT: post_url must be an http")
    assert len(result.stderr.strip().splitlines()) == 1


def test_webhook_list_of_an_unknown_cache_fails(server: ServerProcess) -> None:
    # Act
    result = tidings("webhook", "list", "no-such-cache", endpoint=server.endpoint)

    # Assert
    assert result.returncode == 1
    assert "CACHE_NOT_FOUND" in result.stderr
