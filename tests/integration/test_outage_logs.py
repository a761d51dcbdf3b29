"""An outage is logged when it starts and when it ends, not once per failed attempt: a webhook receiver that is
down (issue 16 item 9), Redis stopped under a node (issue 17 item 5), and one refresh loop failing on its own while
the other works, with real processes. The reminders in between (one a minute) are unit-tested on a fake clock
(tests/unit/test_failure_log.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests._redis import RedisServer
from tests.integration._receiver import Receiver
from tests.integration._server import ServerProcess

StartServer = Callable[..., ServerProcess]
MESSAGES_WHILE_DOWN = 30
# How long Redis stays stopped: the node refreshes keys and webhooks every 0.5 s, so it fails several times.
REDIS_OUTAGE_SECONDS = 2.0
REFRESH = "refreshing API keys and webhooks from the store"
CACHES = "reading the caches from the store"
# How long the key refresh keeps failing on its own: the node refreshes every 0.5 s, so it fails several times.
BROKEN_KEY_SECONDS = 3.0


def _wait_for_metric(server: ServerProcess, line: str, timeout: float = 30.0) -> None:
    """Poll /metrics until it has ``line`` (the server's own count of what happened)."""
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=server.http_url, timeout=10) as http:
        while line not in http.get("/metrics").text:
            assert time.monotonic() < deadline, f"/metrics never had {line!r}"
            time.sleep(0.05)


def test_receiver_outage_is_logged_when_it_starts_and_when_it_ends(start_server: StartServer) -> None:
    # Arrange: each message is given up at its first failed attempt, so the outage is quick to produce
    server = start_server("--create-cache", "c", "--webhook-max-attempts", "1")
    with Receiver(listening=False) as receiver, httpx.Client(base_url=server.http_url, timeout=10) as http:
        assert http.put("/webhooks/c/hook", json={"topic": "events", "url": receiver.url}).status_code == 200

        # Act: 30 messages while the receiver refuses connections, then one after it is back
        for number in range(MESSAGES_WHILE_DOWN):
            http.post("/topics/c/events", content=f"m{number}", headers={"content-type": "text/plain"})
        _wait_for_metric(server, f'tidings_webhook_dropped_total{{cache="c",webhook="hook"}} {MESSAGES_WHILE_DOWN}.0')
        receiver.listen()
        http.post("/topics/c/events", content="back", headers={"content-type": "text/plain"})
        receiver.wait_for(1)
        server.wait_for_log("works again")
    server.stop()

    # Assert
    webhook_lines = [line for line in server.log if " tidings.server.webhooks: " in line]
    assert len(webhook_lines) == 2, "".join(webhook_lines)
    started, ended = webhook_lines
    assert " WARNING tidings.server.webhooks: webhook 'hook' of cache 'c' is failing: gave up on message 1 " in started
    assert started.rstrip().endswith(": connection")
    assert " INFO tidings.server.webhooks: webhook 'hook' of cache 'c' works again after 30 failures " in ended
    assert "(messages given up: 30)" in ended


def test_redis_outage_is_logged_when_it_starts_and_when_it_ends(tmp_path: Path) -> None:
    # Arrange
    redis = RedisServer(tmp_path / "redis").start()
    server = ServerProcess(tmp_path / "node", ("--redis-url", redis.url)).start()
    try:
        # Act
        redis.stop()
        server.wait_for_log(f"{REFRESH} is failing")
        time.sleep(REDIS_OUTAGE_SECONDS)  # the outage's length, not a synchronisation: the node keeps retrying
        redis.start()
        (recovered,) = server.wait_for_log(rf"{REFRESH} works again after (\d+) failures")
        server.wait_for_log(f"{CACHES} works again")
    finally:
        server.stop()
        redis.stop()

    # Assert
    refresh_lines = [line for line in server.log if REFRESH in line or "could not refresh" in line]
    assert len(refresh_lines) == 2, "".join(refresh_lines)
    assert f" WARNING tidings.server: {REFRESH} is failing: Redis is unreachable; retrying" in refresh_lines[0]
    assert f" INFO tidings.server: {REFRESH} works again after " in refresh_lines[1]
    assert int(recovered.group(1)) >= 3  # several refreshes failed, and were logged as one outage
    assert not any(line.startswith("Traceback") for line in server.log)
    # Nothing else that retries logs per attempt either: the caches' watch once each way, and each Redis connection
    # (the store's and the engine's) at most once each way.
    assert _count(server.log, f"{CACHES} is failing: Redis is unreachable") == 1
    assert _count(server.log, f"{CACHES} works again") == 1
    assert 1 <= _count(server.log, "connecting to Redis is failing") <= 2
    assert _count(server.log, "connecting to Redis works again") <= 2
    assert _count(server.log, "Redis connection lost") <= 2
    assert _count(server.log, "is still failing") == 0


def test_refresh_failing_on_its_own_while_the_other_works_is_logged_once(tmp_path: Path) -> None:
    # Arrange: a node on Redis, whose API key refresh will fail on a malformed key record while the webhook
    # refresh goes on working.
    redis = RedisServer(tmp_path / "redis").start()
    server = ServerProcess(tmp_path / "node", ("--redis-url", redis.url)).start()
    try:
        with redis.client() as client:
            # Act: break a key record (and announce a change, so every refresh reads it), then repair it
            client.hset("tidings:{store}:api-keys", "broken", "not json")
            client.incr("tidings:{store}:api-keys-version")
            server.wait_for_log(f"{REFRESH} is failing")
            time.sleep(BROKEN_KEY_SECONDS)  # how long it stays broken, not a synchronisation: the node keeps retrying
            client.hdel("tidings:{store}:api-keys", "broken")
            client.incr("tidings:{store}:api-keys-version")
        (recovered,) = server.wait_for_log(rf"{REFRESH} works again after (\d+) failures")
    finally:
        server.stop()
        redis.stop()

    # Assert: one line when it started (with the traceback of the unexpected error), one when it ended
    refresh_lines = [line for line in server.log if REFRESH in line]
    assert len(refresh_lines) == 2, "".join(refresh_lines)
    assert f" WARNING tidings.server: {REFRESH} is failing: JSONDecodeError: " in refresh_lines[0]
    assert f" INFO tidings.server: {REFRESH} works again after " in refresh_lines[1]
    assert int(recovered.group(1)) >= 4
    assert _count(server.log, "Traceback") == 1


def _count(log: list[str], text: str) -> int:
    """How many lines of ``log`` have ``text``."""
    return sum(text in line for line in log)
