"""The client commands end to end, as subprocesses: ``python -m tidings publish|subscribe|cache ...``."""

from __future__ import annotations

import base64
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import pytest

from tests._child import prepared
from tests.integration._server import ServerProcess
from tidings import TopicClient, TopicPublish

WITHIN = 30.0
StartServer = Callable[..., ServerProcess]


def environment(endpoint: str | None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("TIDINGS_")}
    if endpoint is not None:
        env["TIDINGS_ENDPOINT"] = endpoint
    return env


def tidings(
    *args: str, endpoint: str | None = None, stdin: str | bytes | None = None, api_key: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the command to completion (``TIDINGS_ENDPOINT`` = ``endpoint`` and ``TIDINGS_API_KEY`` = ``api_key``
    unless None)."""
    env = environment(endpoint)
    if api_key is not None:
        env["TIDINGS_API_KEY"] = api_key
    result = subprocess.run(
        [sys.executable, "-m", "tidings", *args],
        input=stdin.encode() if isinstance(stdin, str) else stdin,
        capture_output=True,
        env=env,
        timeout=WITHIN,
        check=False,
    )
    return subprocess.CompletedProcess(result.args, result.returncode, result.stdout.decode(), result.stderr.decode())


def start_subscriber(*args: str, endpoint: str) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """Start ``tidings subscribe ... --events --json`` and return once it printed its first heartbeat (live)."""
    # The tests stop it with SIGINT, as Ctrl-C would: `prepared` makes sure it is not ignored by inheritance.
    process = subprocess.Popen(
        prepared([sys.executable, "-m", "tidings", "subscribe", *args, "--events", "--json"]),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(endpoint),
    )
    assert process.stdout is not None
    first = json.loads(process.stdout.readline())
    return process, first


def readline_within(stream: IO[str], seconds: float) -> str:
    """The next line of ``stream``, or "" if none arrives within ``seconds`` (the reader thread is left blocked
    until the process's pipe closes)."""
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(stream.readline()), daemon=True).start()
    try:
        return lines.get(timeout=seconds)
    except queue.Empty:
        return ""


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: "), result.stderr
    return lines[0]


def test_cli_publishes_stdin_lines_that_subscribe_count_json_reads_back(server: ServerProcess, cache: str) -> None:
    subscriber, first = start_subscriber(cache, "lines", "--count", "3", endpoint=server.endpoint)

    published = tidings("publish", cache, "lines", "-", endpoint=server.endpoint, stdin="a\nb\n\nc ✓\n")
    stdout, stderr = subscriber.communicate(timeout=WITHIN)

    assert published.returncode == 0, published.stderr
    assert subscriber.returncode == 0, stderr
    assert first == {"type": "heartbeat"}
    items = [json.loads(line) for line in stdout.splitlines()]
    items = [item for item in items if item["type"] != "heartbeat"]
    assert [(item["type"], item["value"], item["sequence_number"]) for item in items] == [
        ("text", "a", 1),
        ("text", "b", 2),
        ("text", "c ✓", 3),
    ]
    assert len({item["sequence_page"] for item in items}) == 1
    assert {item["token_id"] for item in items} == {None}


def test_cli_subscribe_prints_readable_lines_from_a_sequence_number(
    server: ServerProcess, sync_client: TopicClient, cache: str
) -> None:
    for value in ("first", "second", "third"):
        assert isinstance(sync_client.publish(cache, "t", value), TopicPublish.Success)

    result = tidings("subscribe", cache, "t", "--from", "2", "--count", "2", endpoint=server.endpoint)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("#2 page ")
    assert lines[0].endswith("  second")
    assert lines[1].startswith("#3 page ")
    assert lines[1].endswith("  third")


def test_cli_publishes_a_binary_file(server: ServerProcess, cache: str, tmp_path: Path) -> None:
    payload = bytes(range(256))
    (tmp_path / "payload.bin").write_bytes(payload)

    published = tidings("--endpoint", server.endpoint, "publish", cache, "b", "--binary", str(tmp_path / "payload.bin"))
    received = tidings("subscribe", cache, "b", "--from", "1", "--count", "1", "--json", "--endpoint", server.endpoint)

    assert published.returncode == 0, published.stderr
    assert received.returncode == 0, received.stderr
    item = json.loads(received.stdout)
    assert item["type"] == "binary"
    assert base64.b64decode(item["value"]) == payload


def test_cli_manages_caches(server: ServerProcess, cache: str) -> None:
    name = f"{cache}-cli"

    created = tidings("cache", "create", name, "--endpoint", server.endpoint)
    again = tidings("cache", "create", name, endpoint=server.endpoint)
    again_ok = tidings("cache", "create", name, "--exist-ok", endpoint=server.endpoint)
    listed = tidings("--endpoint", server.endpoint, "cache", "list")
    deleted = tidings("cache", "delete", name, endpoint=server.endpoint)
    listed_after = tidings("cache", "list", endpoint=server.endpoint)

    assert (created.returncode, again_ok.returncode, deleted.returncode) == (0, 0, 0)
    assert again.returncode == 1
    assert "ALREADY_EXISTS" in one_line_error(again)
    assert name in listed.stdout.splitlines()
    assert name not in listed_after.stdout.splitlines()


@pytest.mark.parametrize(
    ("args", "error_code"),
    [
        (("publish", "no-such-cache", "t", "v"), "CACHE_NOT_FOUND"),
        (("subscribe", "no-such-cache", "t"), "CACHE_NOT_FOUND"),
        (("publish", "CACHE", "bad\ttopic", "v"), "INVALID_ARGUMENT"),
        (("cache", "delete", "no-such-cache"), "CACHE_NOT_FOUND"),
    ],
    ids=["publish-missing-cache", "subscribe-missing-cache", "bad-topic", "delete-missing-cache"],
)
def test_cli_errors_are_one_line_with_a_nonzero_exit(
    server: ServerProcess, cache: str, args: tuple[str, ...], error_code: str
) -> None:
    result = tidings(*(cache if arg == "CACHE" else arg for arg in args), endpoint=server.endpoint)

    assert result.returncode == 1
    assert error_code in one_line_error(result)


def test_cli_publish_names_the_line_of_stdin_that_is_not_text(
    server: ServerProcess, sync_client: TopicClient, cache: str
) -> None:
    result = tidings("publish", cache, "t", "-", endpoint=server.endpoint, stdin=b"ok\n\n\xff\xfe\nnot sent\n")
    received = tidings("subscribe", cache, "t", "--count", "1", "--json", "--from", "1", endpoint=server.endpoint)

    assert result.returncode == 1
    line = one_line_error(result)
    assert "line 3 of stdin is not UTF-8 text" in line
    assert "1 line was before it published" in line
    assert "--binary" in line
    assert json.loads(received.stdout)["value"] == "ok"


def test_cli_publish_names_the_line_of_stdin_that_failed_and_how_many_were_published(
    server: ServerProcess, cache: str
) -> None:
    too_large = "x" * 5000  # over the server's --max-message-size (4096 by default)

    result = tidings("publish", cache, "t", "-", endpoint=server.endpoint, stdin=f"a\n\nb\n{too_large}\nnot sent\n")
    received = tidings("subscribe", cache, "t", "--count", "2", "--json", "--from", "1", endpoint=server.endpoint)

    assert result.returncode == 1
    line = one_line_error(result)
    assert "publish failed at line 4 of stdin (2 lines were before it published, none after)" in line
    assert "LIMIT_EXCEEDED" in line
    assert [json.loads(item)["value"] for item in received.stdout.splitlines()] == ["a", "b"]


# Every form the parser refuses is in tests/unit/test_cli_endpoint.py; here two of them go through the real
# command, as an option, on a command and from the environment.
@pytest.mark.parametrize("endpoint", ["http://localhost:8080", "localhost"])
def test_cli_refuses_an_endpoint_that_is_not_host_port_as_a_usage_error(endpoint: str) -> None:
    as_option = tidings("--endpoint", endpoint, "publish", "c", "t", "v")
    on_the_command = tidings("cache", "list", "--endpoint", endpoint)
    from_the_environment = tidings("subscribe", "c", "t", endpoint=endpoint)

    for result in (as_option, on_the_command):
        assert result.returncode == 2, result.stderr
        assert f"Invalid value for '--endpoint': {endpoint!r} is not HOST:PORT" in result.stderr
    assert from_the_environment.returncode == 2, from_the_environment.stderr
    assert f"Invalid value for $TIDINGS_ENDPOINT: {endpoint!r} is not HOST:PORT" in from_the_environment.stderr
    assert "Misformatted" not in as_option.stderr + on_the_command.stderr + from_the_environment.stderr


@pytest.mark.parametrize("command", [("publish", "CACHE", "t", "v"), ("subscribe", "CACHE", "t", "--count", "1")])
def test_cli_on_the_http_port_says_it_reached_tidings_http_port_and_which_port_to_use(
    server: ServerProcess, cache: str, command: tuple[str, ...]
) -> None:
    result = tidings(*(cache if arg == "CACHE" else arg for arg in command), endpoint=f"127.0.0.1:{server.http_port}")

    assert result.returncode == 1
    line = one_line_error(result)
    assert "UNIMPLEMENTED: this is tidings' HTTP port" in line
    assert f"gRPC is served on port {server.port}" in line


def test_cli_subscribe_to_a_stopped_server_fails_at_once_like_publish(start_server: StartServer) -> None:
    server = start_server("--create-cache", "c")
    server.stop()
    # A timeout as long as the helper's own: the SDK alone would retry the refused stream until it passes.
    started = time.monotonic()
    result = tidings("subscribe", "c", "t", "--timeout", str(WITHIN), endpoint=server.endpoint)
    elapsed = time.monotonic() - started

    assert result.returncode == 1
    assert f"UNAVAILABLE: cannot connect to {server.endpoint}: Connection refused" in one_line_error(result)
    assert elapsed < WITHIN / 2


def test_cli_key_list_piped_shows_each_key_on_one_line_whole(start_server: StartServer) -> None:
    server = start_server()
    server.stop()
    description = "the nightly reconciliation job of the orders team, which reads every order event"
    scopes = ("readonly:orders:events-*", "readwrite:invoices:*", "writeonly:audit:trail")
    created = tidings("key", "create", *scopes, "--description", description, "--data-dir", str(server.data_dir))

    listed = subprocess.run(
        [sys.executable, "-m", "tidings", "key", "list", "--data-dir", str(server.data_dir)],
        capture_output=True, text=True, env={**environment(None), "COLUMNS": "80"}, timeout=WITHIN, check=False,
    )  # fmt: skip

    assert created.returncode == 0, created.stderr
    assert listed.returncode == 0, listed.stderr
    [row] = [line for line in listed.stdout.splitlines() if description in line]
    assert " ".join(scopes) in row


BINARY = b"\x00\xff\x10tidings"


@pytest.mark.parametrize(
    ("args", "encoding", "encoded"),
    [
        ((), "base64", base64.b64encode(BINARY).decode()),
        (("--binary-format", "base64"), "base64", base64.b64encode(BINARY).decode()),
        (("--binary-format", "hex"), "hex", BINARY.hex()),
    ],
    ids=["default", "base64", "hex"],
)
def test_cli_subscribe_prints_binary_values_readably(
    server: ServerProcess, sync_client: TopicClient, cache: str, args: tuple[str, ...], encoding: str, encoded: str
) -> None:
    assert isinstance(sync_client.publish(cache, "b", BINARY), TopicPublish.Success)

    result = tidings("subscribe", cache, "b", "--from", "1", "--count", "1", *args, endpoint=server.endpoint)
    as_json = tidings("subscribe", cache, "b", "--from", "1", "--count", "1", "--json", *args, endpoint=server.endpoint)

    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip("\n").endswith(f"  {len(BINARY)} bytes {encoding}: {encoded}")
    item = json.loads(as_json.stdout)
    assert (item["type"], item["encoding"], item["value"]) == ("binary", encoding, encoded)


def test_cli_subscriber_says_it_is_reconnecting_then_once_that_it_reconnected_after_a_restart(
    start_server: StartServer,
) -> None:
    server = start_server("--create-cache", "c")
    subscriber, first = start_subscriber("c", "t", endpoint=server.endpoint)
    try:
        assert subscriber.stdout is not None
        assert subscriber.stderr is not None

        server.stop()
        reconnecting = readline_within(subscriber.stderr, WITHIN)  # while the server is down
        server.start()
        said = readline_within(subscriber.stderr, WITHIN)  # once the new stream is live (its first heartbeat arrived)
        with TopicClient(server.endpoint) as client:
            assert isinstance(client.publish("c", "t", "after the restart"), TopicPublish.Success)
        lines = [subscriber.stdout.readline()]
        while json.loads(lines[-1])["type"] != "text":
            lines.append(subscriber.stdout.readline())
        subscriber.send_signal(signal.SIGINT)
        _, rest = subscriber.communicate(timeout=WITHIN)
    finally:
        if subscriber.poll() is None:  # a failure above: do not leave the process behind
            subscriber.kill()
            subscriber.communicate()

    assert first == {"type": "heartbeat"}
    assert reconnecting == "reconnecting: the stream broke (server restart or lost connection); trying again\n"
    assert said == "reconnected: the stream broke (server restart or lost connection); resumed live\n"
    assert json.loads(lines[-1])["value"] == "after the restart"
    assert "reconnected" not in rest
