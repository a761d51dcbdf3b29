"""Which hosts and web origins may use the HTTP API (README *What the server guards against*).

A web page the user visits can reach a server on the user's machine: by DNS rebinding (its own host name,
resolved to 127.0.0.1, so the request carries ``Host: attacker.example``) or by a cross-site "simple" request
(a form post or a ``text/plain`` fetch, sent without a CORS preflight). With the default loopback set-up every
caller is a super-user, so:

- a request whose ``Host`` is not an allowed host name is refused (``421``) before anything else happens;
- a state-changing request (any method but GET, HEAD, OPTIONS) that a browser marks as coming from another
  origin (an ``Origin`` header not naming this server) is refused (``403``) unless the origin is allowed
  (``--cors-origins``). Clients that are not browsers send no ``Origin`` and are not affected.

Allowed origins also get CORS answers (preflights, ``Access-Control-Allow-Origin``), so a web application
served elsewhere can use the API from the browser, and Momento's web SDK its gRPC-web calls (their headers are
allowed, their status headers exposed).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from tidings.server.http._errors import CrossOriginRefused, MisdirectedRequest, error_response

_SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
_CORS_METHODS: Final = ("GET", "POST", "PUT", "DELETE")
_CORS_HEADERS: Final = (
    "authorization",
    "content-type",
    "last-event-id",
    # What Momento's web SDK sends with its gRPC-web calls (``_grpc_web_calls``).
    "x-grpc-web",
    "x-user-agent",
    "cache",
    "agent",
    "runtime-version",
    "grpc-timeout",
)
# What a page may read of a gRPC-web answer: the status of a trailers-only one, and ``err`` (the limit hit).
_CORS_EXPOSED: Final = ("grpc-status", "grpc-message", "err")


def host_name(host: str) -> str:
    """The name part of a ``Host`` header (or of a pattern): lower case, without port or IPv6 brackets."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    name, colon, port = host.rpartition(":")
    if colon and port.isdigit() and ":" not in name:
        return name
    return host


class HostNames:
    """A set of allowed host names: exact names, ``*.suffix`` wildcards, or ``*`` for any."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = tuple(patterns)
        self.any = "*" in self.patterns
        self._exact = frozenset(host_name(p) for p in self.patterns if not p.startswith("*"))
        self._suffixes = tuple(p[1:].lower() for p in self.patterns if p.startswith("*."))

    def allows(self, name: str) -> bool:
        """Whether ``name`` (from `host_name`) is allowed."""
        return self.any or name in self._exact or name.endswith(self._suffixes)


class OriginGuard:
    """ASGI middleware refusing foreign ``Host`` headers and cross-origin state-changing requests."""

    def __init__(self, app: ASGIApp, hosts: HostNames, cors_origins: Iterable[str]) -> None:
        self.app = app
        self.hosts = hosts
        self.cors_origins = frozenset(origin.strip().rstrip("/").lower() for origin in cors_origins)
        self._any_origin = "*" in self.cors_origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = origin = None
        for name, value in scope["headers"]:
            if name == b"host":
                host = value.decode("latin-1")
            elif name == b"origin":
                origin = value.decode("latin-1")
        if host is not None and not self.hosts.any and not self.hosts.allows(host_name(host)):
            message = (
                f"this server does not answer for host {host_name(host)!r}; "
                "add it to --allowed-hosts if that is how clients reach it"
            )
            await error_response(MisdirectedRequest(message), scope=scope)(scope, receive, send)
            return
        if origin is not None and scope["method"] not in _SAFE_METHODS and not self._origin_allowed(origin, host):
            message = f"cross-origin request from {origin} refused; allow the origin with --cors-origins"
            await error_response(CrossOriginRefused(message), scope=scope)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _origin_allowed(self, origin: str, host: str | None) -> bool:
        origin = origin.strip().rstrip("/").lower()
        if self._any_origin or origin in self.cors_origins:
            return True
        # Same origin: the browser's page came from this server (scheme://host[:port], as the Host header says).
        _, separator, authority = origin.partition("://")
        return bool(separator) and host is not None and authority == host.strip().lower()


def guard_origins(app: ASGIApp, allowed_hosts: Iterable[str] | None, cors_origins: Iterable[str]) -> ASGIApp:
    """``app`` behind the host and origin checks (``allowed_hosts`` None: any host), with CORS answers for
    ``cors_origins``."""
    origins = tuple(cors_origins)
    if origins:
        app = CORSMiddleware(
            app,
            allow_origins=origins,
            allow_methods=_CORS_METHODS,
            allow_headers=_CORS_HEADERS,
            expose_headers=_CORS_EXPOSED,
            max_age=600,
        )
    return OriginGuard(app, HostNames(("*",) if allowed_hosts is None else allowed_hosts), origins)
