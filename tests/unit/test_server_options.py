"""``tidings server``'s flags come from the settings' declarations: names, variables, help, ranges, errors."""

from __future__ import annotations

import math

import pytest
from click.testing import CliRunner, Result

from tidings.cli._server import SERVER_OPTIONS, server
from tidings.server.config import FLAGS, OPTIONS, Settings
from tidings.server.core import Limits
from tidings.server.options import InvalidSetting, human_size

# Today's variables: they are part of deployments, so they never change by accident.
VARIABLES = [
    "TIDINGS_HOST",
    "TIDINGS_PORT",
    "TIDINGS_HTTP_PORT",
    "TIDINGS_DATA_DIR",
    "TIDINGS_CREATE_CACHE",
    "TIDINGS_MAX_MESSAGE_SIZE",
    "TIDINGS_MAX_SUBSCRIPTIONS_PER_CACHE",
    "TIDINGS_PUBLISH_RATE",
    "TIDINGS_RETENTION_MESSAGES",
    "TIDINGS_RETENTION_SIZE",
    "TIDINGS_MAX_RETAINED_BYTES",
    "TIDINGS_MAX_CACHES",
    "TIDINGS_MAX_TOPICS_PER_CACHE",
    "TIDINGS_TOPIC_IDLE_TTL",
    "TIDINGS_HEARTBEAT_INTERVAL",
    "TIDINGS_SUBSCRIBE_LATEST",
    "TIDINGS_HTTP_LONG_POLL_TIMEOUT",
    "TIDINGS_DRAIN_TIMEOUT",
    "TIDINGS_REQUIRE_AUTH",
    "TIDINGS_ALLOW_ANONYMOUS",
    "TIDINGS_PUBLIC_ENDPOINT",
    "TIDINGS_TLS_CERT",
    "TIDINGS_TLS_KEY",
    "TIDINGS_FAULT_INJECTION",
    "TIDINGS_MAX_PENDING_CALLS",
    "TIDINGS_GRPC_TRANSPORT",
    "TIDINGS_ALLOW_FAULT_INJECTION_WITH_AUTH",
    "TIDINGS_TEST_ADMIN_PORT",
    "TIDINGS_REDIS_URL",
    "TIDINGS_REDIS_CLUSTER",
    "TIDINGS_WORKERS",
    "TIDINGS_MAX_CONNECTIONS",
    "TIDINGS_MAX_CONNECTIONS_PER_ADDRESS",
    "TIDINGS_MAX_STREAMS_PER_CONNECTION",
    "TIDINGS_HTTP_IDLE_TIMEOUT",
    "TIDINGS_GRPC_IDLE_TIMEOUT",
    "TIDINGS_REQUEST_TIMEOUT",
    "TIDINGS_ALLOWED_HOSTS",
    "TIDINGS_CORS_ORIGINS",
    "TIDINGS_WEBHOOK_TIMEOUT",
    "TIDINGS_WEBHOOK_MAX_ATTEMPTS",
    "TIDINGS_WEBHOOK_ALLOW_PRIVATE",
    "TIDINGS_TEST_FOLLOW_DELAY",
    "TIDINGS_TEST_WEBHOOK_LEASE_SECONDS",
    "TIDINGS_TEST_H2_KEEPALIVE",
    "TIDINGS_LOG_LEVEL",
    "TIDINGS_LOG_FORMAT",
    "TIDINGS_LOG_THIRD_PARTY",
]
HIDDEN = {"TIDINGS_TEST_FOLLOW_DELAY", "TIDINGS_TEST_WEBHOOK_LEASE_SECONDS", "TIDINGS_TEST_H2_KEEPALIVE"}


def _help() -> str:
    result = CliRunner().invoke(server, ["--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    return result.output


def _run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(server, list(args), env=env)


def test_server_options_keep_every_environment_variable() -> None:
    assert sorted(option.variable for option in SERVER_OPTIONS) == sorted(VARIABLES)


def test_server_options_each_flag_is_declared_once() -> None:
    flags = [option.flag for option in SERVER_OPTIONS]

    assert len(flags) == len(set(flags))
    assert len(FLAGS) == len(OPTIONS)


def test_server_options_help_shows_variables_sizes_and_hides_test_hooks() -> None:
    text = " ".join(_help().split())

    for variable in set(VARIABLES) - HIDDEN:
        assert f"env var: {variable}" in text, variable
    for variable in HIDDEN:
        assert variable not in text
    assert "--max-message-size SIZE" in text
    assert "default: 4KiB" in text
    assert "default: 1MiB" in text
    assert "--heartbeat-interval SECONDS" in text


def test_server_options_build_the_settings_they_declare(monkeypatch: pytest.MonkeyPatch) -> None:
    captured: list[Settings] = []
    monkeypatch.setattr("tidings.server.app.run", captured.append)
    env = {"TIDINGS_TEST_FOLLOW_DELAY": "0.25", "TIDINGS_TEST_H2_KEEPALIVE": "2", "TIDINGS_CREATE_CACHE": "a b"}

    result = _run("--retention-size", "2MiB", "--redis-cluster", "redis://127.0.0.1:7000", "--workers", "2", env=env)

    assert result.exit_code == 0, result.output
    [settings] = captured
    assert settings.limits == Limits(retention_bytes=2 * 1024**2)
    assert (settings.redis_url, settings.redis_cluster, settings.workers) == ("redis://127.0.0.1:7000", True, 2)
    assert (settings.test_follow_delay, settings.test_h2_keepalive, settings.test_webhook_lease_seconds) == (
        0.25,
        2.0,
        10.0,
    )
    assert settings.create_caches == ("a", "b")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--retention-size", "1KiB"), "--retention-size must be at least --max-message-size"),
        (("--max-retained-bytes", "1KiB"), "--max-retained-bytes must be at least --retention-size"),
        (("--max-message-size", "0"), "--max-message-size must be at least 1"),
        (("--topic-idle-ttl", "inf"), "--topic-idle-ttl must be positive and finite"),
        (("--heartbeat-interval", "nan"), "--heartbeat-interval must be positive and finite"),
        (("--publish-rate", "inf"), "--publish-rate must be positive and finite"),
        (("--drain-timeout", "inf"), "--drain-timeout must be 0 or more, and finite"),
        (("--workers", "2"), "--workers above 1 needs --redis-url or --redis-cluster"),
        (("--tls-cert", __file__), "--tls-cert and --tls-key go together"),
    ],
)
def test_server_options_errors_name_the_flags(args: tuple[str, ...], message: str) -> None:
    result = _run(*args)

    assert result.exit_code == 2
    assert f"Error: {message}" in result.output
    assert "setting " not in result.output


def test_server_options_refuse_values_out_of_the_flags_range() -> None:
    result = _run("--heartbeat-interval", "0.05")

    assert result.exit_code == 2
    assert "--heartbeat-interval" in result.output


def test_settings_name_the_flag_and_the_field_of_a_value_out_of_range() -> None:
    with pytest.raises(InvalidSetting) as refused:
        Settings(heartbeat_interval=math.inf)

    assert refused.value.message == "--heartbeat-interval must be positive and finite"
    assert str(refused.value) == "--heartbeat-interval must be positive and finite (setting heartbeat_interval)"


def test_settings_accept_intervals_below_the_flags_floor() -> None:
    assert Settings(heartbeat_interval=0.01).heartbeat_interval == 0.01


@pytest.mark.parametrize(("count", "text"), [(4096, "4KiB"), (1024**2, "1MiB"), (3 * 1024**3, "3GiB"), (1000, "1000")])
def test_human_size(count: int, text: str) -> None:
    assert human_size(count) == text
