"""Host names and origins the HTTP API accepts (PROTOCOL.md *HTTP safety*)."""

from __future__ import annotations

import pytest

from tidings.server.config import LOOPBACK_HOSTS, Settings
from tidings.server.http._origin import HostNames, host_name
from tidings.server.process import max_connections_for


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("127.0.0.1:8081", "127.0.0.1"),
        ("LocalHost", "localhost"),
        ("[::1]:8081", "::1"),
        ("[::1]", "::1"),
        ("::1", "::1"),
        ("example.com:443", "example.com"),
        ("example.com:", "example.com:"),
    ],
)
def test_host_name_drops_port_brackets_and_case(header: str, name: str) -> None:
    assert host_name(header) == name


def test_host_names_match_exact_names_and_wildcard_suffixes() -> None:
    hosts = HostNames(("tidings.internal", "*.svc.example", "[::1]"))

    assert hosts.allows("tidings.internal")
    assert hosts.allows("api.svc.example")
    assert hosts.allows("::1")
    assert not hosts.allows("svc.example")
    assert not hosts.allows("attacker.example")
    assert not hosts.allows("tidings.internal.attacker.example")
    assert HostNames(("*",)).allows("anything")


def test_loopback_server_answers_loopback_names_and_its_address_by_default() -> None:
    assert Settings(host="127.0.0.1").http_allowed_hosts == LOOPBACK_HOSTS
    assert Settings(host="127.0.0.2").http_allowed_hosts == (*LOOPBACK_HOSTS, "127.0.0.2")
    assert Settings(host="0.0.0.0", require_auth=True).http_allowed_hosts is None  # any host
    assert Settings(host="0.0.0.0", require_auth=True, allowed_hosts=("a.example",)).http_allowed_hosts == (
        "a.example",
    )


def test_cors_origin_must_be_an_origin() -> None:
    with pytest.raises(ValueError, match="scheme://host"):
        Settings(cors_origins=("app.example.com",))
    Settings(cors_origins=("https://app.example.com", "*"))


@pytest.mark.parametrize(("limit", "per_transport"), [(256, 96), (1024, 448), (65536, 28672)])
def test_connections_per_transport_leave_room_for_the_rest(limit: int, per_transport: int) -> None:
    assert max_connections_for(limit) == per_transport
    assert 2 * per_transport < limit
