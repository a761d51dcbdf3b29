"""Connection arguments: endpoints, API key metadata, timeouts, environment variables, TLS."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tidings import AuthClient, CacheClientAsync, ConnectionOptions, TopicClient, TopicClientAsync
from tidings.client._connection import ConnectionSettings, arguments_from_env


@pytest.mark.parametrize(
    ("endpoint", "target", "tls"),
    [
        ("localhost:8080", "localhost:8080", False),
        ("grpc://127.0.0.1:9000", "127.0.0.1:9000", False),
        ("grpcs://topics.example.com:443/", "topics.example.com:443", True),
    ],
    ids=["plain", "grpc-scheme", "grpcs-scheme"],
)
def test_client_connection_reads_endpoints(endpoint: str, target: str, tls: bool) -> None:
    settings = ConnectionSettings.of(ConnectionOptions(endpoint, timeout=5))

    assert (settings.target, settings.tls) == (target, tls)


def test_client_connection_sends_the_api_key_or_an_empty_header() -> None:
    assert ConnectionSettings.of(ConnectionOptions("h:1", "key")).metadata == (("authorization", "key"),)
    assert ConnectionSettings.of(ConnectionOptions("h:1")).metadata == (("authorization", ""),)


def test_client_connection_takes_timeouts_as_seconds_or_timedelta() -> None:
    assert ConnectionSettings.of(ConnectionOptions("h:1", timeout=timedelta(minutes=1))).timeout == 60.0
    assert ConnectionSettings.of(ConnectionOptions("h:1", timeout=0.5)).timeout == 0.5


@pytest.mark.parametrize(
    "arguments",
    [
        {"endpoint": ""},
        {"timeout": 0},
        {"timeout": -1},
        {"root_certificates": b"pem"},
    ],
    ids=["empty-endpoint", "zero-timeout", "negative-timeout", "certificates-without-tls"],
)
def test_client_connection_refuses_bad_arguments(arguments: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011  # each argument has its own message
        TopicClientAsync(**arguments)  # type: ignore[arg-type]
    with pytest.raises(ValueError):  # noqa: PT011
        ConnectionOptions(**arguments)  # type: ignore[arg-type]


def test_client_connection_options_are_one_value_every_client_takes() -> None:
    options = ConnectionOptions("grpc://example.test:7000", "key", timeout=2)

    topics = TopicClientAsync(options)
    caches = CacheClientAsync(options, "other-key", headers={"x-test": "1"})
    with AuthClient(options) as auth:
        assert auth.options is options
    assert topics.options is options
    assert topics.endpoint == caches.endpoint == "example.test:7000"
    assert caches.options == ConnectionOptions(
        "grpc://example.test:7000", "other-key", timeout=2, headers={"x-test": "1"}
    )
    assert TopicClientAsync("example.test:7000", "key", timeout=2).options == ConnectionOptions(
        "example.test:7000", "key", timeout=2
    )


def test_client_connection_reads_the_environment_and_lets_arguments_win() -> None:
    environ = {"TIDINGS_ENDPOINT": "env:1", "TIDINGS_API_KEY": "env-key"}

    assert arguments_from_env({}, environ) == {"endpoint": "env:1", "api_key": "env-key"}
    assert arguments_from_env({"api_key": "mine"}, environ)["api_key"] == "mine"
    assert arguments_from_env({}, {}) == {"endpoint": "localhost:8080", "api_key": None}


def test_client_connection_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDINGS_ENDPOINT", "grpc://example.test:7000")
    monkeypatch.delenv("TIDINGS_API_KEY", raising=False)

    with TopicClient.from_env(timeout=1) as client:
        assert client.endpoint == "example.test:7000"
    assert TopicClientAsync.from_env().endpoint == "example.test:7000"


async def test_client_connection_uses_tls_credentials_when_asked() -> None:
    settings = ConnectionSettings.of(ConnectionOptions("localhost:1", tls=True))

    channel = settings.open_channel()
    try:
        assert type(channel).__name__ == "Channel"
    finally:
        await channel.close(grace=None)
