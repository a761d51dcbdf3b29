"""``--endpoint`` values: what the CLI takes, the usage error for what it does not, and whether grpc reaches it
through a proxy (then the CLI does not probe it itself)."""

from __future__ import annotations

import socket

import click
import pytest

from tidings.cli._client import refuse_unreachable
from tidings.cli._endpoint import (
    ENDPOINT,
    NO_PROXY_VARIABLES,
    PROXY_VARIABLES,
    Endpoint,
    parse_endpoint,
    through_grpc_proxy,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("localhost:8080", Endpoint("localhost", 8080, tls=False)),
        (" 127.0.0.1:1 ", Endpoint("127.0.0.1", 1, tls=False)),
        ("grpc://tidings.internal:8080", Endpoint("tidings.internal", 8080, tls=False)),
        ("grpcs://tidings.example.com:443", Endpoint("tidings.example.com", 443, tls=True)),
        ("GRPCS://tidings.example.com:443/", Endpoint("tidings.example.com", 443, tls=True)),
        ("[::1]:8080", Endpoint("[::1]", 8080, tls=False)),
        ("[fe80::1%eth0]:65535", Endpoint("[fe80::1%eth0]", 65535, tls=False)),
        ("my_host-1:8080", Endpoint("my_host-1", 8080, tls=False)),
    ],
)
def test_parse_endpoint_takes_host_port_with_an_optional_grpc_scheme(text: str, expected: Endpoint) -> None:
    assert parse_endpoint(text) == expected


def test_endpoint_prints_as_the_sdk_takes_it() -> None:
    assert str(parse_endpoint("grpc://localhost:8080")) == "localhost:8080"
    assert str(parse_endpoint("grpcs://h:443")) == "grpcs://h:443"
    assert parse_endpoint("[::1]:8080").address == ("::1", 8080)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("http://localhost:8080", "drop http:// (the CLI speaks gRPC, not HTTP)"),
        ("https://localhost:8080", "drop https:// (the CLI speaks gRPC, not HTTP)"),
        ("tcp://localhost:8080", "drop tcp://"),
        ("localhost:8080/topics", "no path, query or user part"),
        ("localhost:8080?x=1", "no path, query or user part"),
        ("user@localhost:8080", "no path, query or user part"),
        (":8080", "the host is missing"),
        ("grpc://:8080", "the host is missing"),
        ("localhost", "the port is missing"),
        ("localhost:", "the port is missing"),
        ("localhost:http", "the port must be a number from 1 to 65535"),
        ("localhost:0", "the port must be a number from 1 to 65535"),
        ("localhost:65536", "the port must be a number from 1 to 65535"),
        ("::1:8080", "write an IPv6 address in brackets, as [::1]:8080"),
        ("local..host!:8080", "'local..host!' is not a host name or address"),
        ("", "the port is missing"),
    ],
)
def test_parse_endpoint_refuses_anything_else_naming_host_port(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match="is not HOST:PORT") as refused:
        parse_endpoint(text)

    assert str(refused.value).endswith(reason)


def test_endpoint_type_is_a_usage_error() -> None:
    with pytest.raises(click.BadParameter, match="is not HOST:PORT"):
        ENDPOINT.convert("http://localhost:8080", None, None)


PROXY = "http://proxy.internal:3128"


@pytest.mark.parametrize(
    ("host", "environ", "expected"),
    [
        ("localhost", {}, False),
        ("localhost", {"https_proxy": PROXY}, True),
        ("localhost", {"http_proxy": PROXY}, True),
        ("localhost", {"grpc_proxy": PROXY}, True),
        ("localhost", {"grpc_proxy": "", "https_proxy": PROXY}, False),
        ("localhost", {"HTTPS_PROXY": PROXY}, False),
        ("localhost", {"https_proxy": PROXY, "no_proxy": "localhost,127.0.0.1"}, False),
        ("tidings.example.com", {"https_proxy": PROXY, "no_proxy": " .EXAMPLE.com "}, False),
        ("tidings.example.com", {"https_proxy": PROXY, "no_proxy": "other.com"}, True),
        ("127.0.0.1", {"https_proxy": PROXY, "no_proxy": "10.0.0.0/8,127.0.0.0/8"}, False),
        ("10.1.2.3", {"https_proxy": PROXY, "no_proxy": "127.0.0.0/8"}, True),
        ("[::1]", {"https_proxy": PROXY, "no_proxy": "::1/128"}, False),
        ("localhost", {"https_proxy": PROXY, "no_grpc_proxy": "other", "no_proxy": "localhost"}, True),
        ("localhost", {"https_proxy": PROXY, "no_grpc_proxy": "localhost", "no_proxy": ""}, False),
        ("localhost", {"https_proxy": PROXY, "no_proxy": "127.0.0.0/8"}, True),
    ],
    ids=[
        "no-proxy-set",
        "https_proxy",
        "http_proxy",
        "grpc_proxy",
        "empty-grpc_proxy-means-none",
        "upper-case-not-read",
        "no_proxy-names-host",
        "no_proxy-domain-suffix",
        "no_proxy-other-domain",
        "no_proxy-cidr-holds-address",
        "no_proxy-cidr-elsewhere",
        "no_proxy-ipv6-cidr",
        "no_grpc_proxy-wins",
        "no_grpc_proxy-names-host",
        "cidr-does-not-match-a-name",
    ],
)
def test_through_grpc_proxy_reads_the_environment_as_grpc_does(
    host: str, environ: dict[str, str], expected: bool
) -> None:
    assert through_grpc_proxy(host, environ) is expected


@pytest.fixture
def closed_port(monkeypatch: pytest.MonkeyPatch) -> int:
    """A loopback port nothing listens on, and an environment without proxy variables."""
    for name in (*PROXY_VARIABLES, *NO_PROXY_VARIABLES):
        monkeypatch.delenv(name, raising=False)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_refuse_unreachable_fails_at_once_without_a_proxy(closed_port: int) -> None:
    with pytest.raises(click.ClickException, match=r"^subscribe failed: UNAVAILABLE: cannot connect to 127\.0\.0\.1:"):
        refuse_unreachable(f"127.0.0.1:{closed_port}", 5, "subscribe failed")


def test_refuse_unreachable_leaves_an_endpoint_behind_a_proxy_to_grpc(
    closed_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("https_proxy", PROXY)

    refuse_unreachable(f"127.0.0.1:{closed_port}", 5, "subscribe failed")  # no error: grpc may reach it
