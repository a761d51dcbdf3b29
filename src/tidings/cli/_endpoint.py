"""``--endpoint``: a gRPC ``HOST:PORT`` (``grpc://`` or ``grpcs://`` before it), checked before anything connects.

grpcio reads a URL such as ``http://localhost:8080`` as a host name and answers ``UNAVAILABLE: ... Misformatted
domain name`` after trying to resolve it; a usage error that names the expected form says what to change.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, ParamSpec, TypeVar

import click

ENDPOINT_FORM: Final = "HOST:PORT (for example localhost:8080; grpcs://HOST:PORT for TLS)"
_SCHEMES: Final = frozenset({"grpc", "grpcs"})
_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://")
_HOST_NAME = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$")
_IPV6 = re.compile(r"^\[[0-9A-Fa-f:.]+(%[A-Za-z0-9_.-]+)?\]$")
# Where grpc-core finds an HTTP CONNECT proxy, and the hosts to reach without it: the first variable set wins.
# Lower case only: grpc-core reads no other spelling.
PROXY_VARIABLES: Final = ("grpc_proxy", "https_proxy", "http_proxy")
NO_PROXY_VARIABLES: Final = ("no_grpc_proxy", "no_proxy")

_P = ParamSpec("_P")
_R = TypeVar("_R")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a client command connects: ``host`` (an IPv6 address in brackets), ``port``, and whether TLS."""

    host: str
    port: int
    tls: bool

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` for the socket module (brackets removed)."""
        return self.host.strip("[]"), self.port

    def __str__(self) -> str:
        return f"{'grpcs://' if self.tls else ''}{self.host}:{self.port}"


def parse_endpoint(text: str) -> Endpoint:
    """The endpoint ``text`` names; ValueError, saying what is expected, for anything else (a URL of another
    scheme, a path, an empty host, a missing or bad port)."""
    given = text.strip()
    rest, tls = given, False
    scheme = _SCHEME.match(given)
    if scheme is not None:
        name = scheme["scheme"].lower()
        if name not in _SCHEMES:
            hint = " (the CLI speaks gRPC, not HTTP)" if name in {"http", "https"} else ""
            raise ValueError(f"{text!r} is not {ENDPOINT_FORM}: drop {name}://{hint}")
        rest, tls = given[scheme.end() :], name == "grpcs"
    rest = rest.removesuffix("/")  # as the SDK takes it
    if any(character in rest for character in "/?#@ "):
        raise ValueError(f"{text!r} is not {ENDPOINT_FORM}: no path, query or user part")
    host, colon, port = rest.rpartition(":")
    if not colon or not port:
        raise ValueError(f"{text!r} is not {ENDPOINT_FORM}: the port is missing")
    if not port.isascii() or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r} is not {ENDPOINT_FORM}: the port must be a number from 1 to 65535")
    if not host:
        raise ValueError(f"{text!r} is not {ENDPOINT_FORM}: the host is missing")
    if ":" in host and not host.startswith("["):
        raise ValueError(f"{text!r} is not {ENDPOINT_FORM}: write an IPv6 address in brackets, as [::1]:8080")
    if not (_IPV6.match(host) if host.startswith("[") else _HOST_NAME.match(host)):
        raise ValueError(f"{text!r} is not {ENDPOINT_FORM}: {host!r} is not a host name or address")
    return Endpoint(host, int(port), tls)


class EndpointType(click.ParamType):  # type: ignore[type-arg]
    """The ``--endpoint`` option's type: a usage error (exit 2) naming the option for a bad endpoint."""

    name = "endpoint"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            return str(parse_endpoint(str(value)))
        except ValueError as error:
            self.fail(str(error), param, ctx)


ENDPOINT = EndpointType()


def endpoint_from_environment(text: str, variable: str) -> str:
    """``text`` (the value of environment ``variable``) checked as ``--endpoint`` is: a usage error naming it."""
    try:
        return str(parse_endpoint(text))
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint=f"${variable}") from None


def through_grpc_proxy(host: str, environ: Mapping[str, str]) -> bool:
    """Whether grpc connects to ``host`` through an HTTP CONNECT proxy with environment ``environ``, by grpc-core's
    rules: the first of ``grpc_proxy``, ``https_proxy``, ``http_proxy`` that is set names the proxy (set but
    empty: none), unless the first of ``no_grpc_proxy``, ``no_proxy`` that is set lists, comma-separated, a
    suffix of ``host`` (``example.com``, ``.internal``, ``localhost``, case ignored) or a CIDR range that holds
    it (``127.0.0.0/8``, ``::1/128``)."""
    proxy = next((environ[name] for name in PROXY_VARIABLES if name in environ), "")
    if not proxy:
        return False
    exceptions = next((environ[name] for name in NO_PROXY_VARIABLES if name in environ), "")
    host = host.strip("[]").lower()
    for entry in (entry.strip().lower() for entry in exceptions.split(",")):
        if entry and (host.endswith(entry) or _in_range(host, entry)):
            return False
    return True


def _in_range(host: str, cidr: str) -> bool:
    """Whether ``host`` is an IP address in the range ``cidr`` (``10.0.0.0/8``); False for anything else."""
    if "/" not in cidr:
        return False
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]) in ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class GroupConnection:
    """``--endpoint`` / ``--api-key`` as given to the ``tidings`` group."""

    endpoint: str | None = None
    api_key: str | None = None


def endpoint_option(function: Callable[_P, _R]) -> Callable[_P, _R]:
    """Add ``--endpoint`` and ``--api-key``."""
    function = click.option(
        "--api-key",
        metavar="KEY",
        default=None,
        help="API key or token (default: $TIDINGS_API_KEY, else anonymous).",
    )(function)
    return click.option(
        "--endpoint",
        metavar="HOST:PORT",
        type=ENDPOINT,
        default=None,
        help="Server to connect to; grpcs:// for TLS (default: $TIDINGS_ENDPOINT, else localhost:8080).",
    )(function)
