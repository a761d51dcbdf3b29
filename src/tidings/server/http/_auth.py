"""Where HTTP requests carry their token (PROTOCOL.md *HTTP API*) and who the caller is.

The token is verified by the same `Authenticator` as gRPC's ``authorization`` metadata, so a token means the
same over both transports; permissions are the core's business (it gets the `Principal`).
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import HTTPConnection

from tidings.server.core import InvalidArgument, Principal

Authenticate = Callable[[str | None], Principal]
"""Credential (None: none) -> the principal behind it, or `Unauthenticated` (``Authenticator.authenticate``)."""

_BEARER = "bearer "


def credentials_of(request: HTTPConnection) -> str | None:
    """The token a request carries in ``Authorization`` (raw or ``Bearer``) or ``?token=``; None if neither.

    Both at once is `InvalidArgument` (400). An empty token is anonymous, as an empty gRPC ``authorization``
    header is.
    """
    header = request.headers.get("authorization")
    query = request.query_params.get("token") if request.scope.get("query_string") else None
    if header is not None and query is not None:
        raise InvalidArgument("send the token in the Authorization header or the token query parameter, not both")
    token = header if header is not None else query
    if token is None:
        return None
    token = token.strip()
    if token[: len(_BEARER)].lower() == _BEARER:
        token = token[len(_BEARER) :].strip()
    return token or None


def authorize(request: HTTPConnection, authenticate: Authenticate) -> Principal:
    """The principal the request acts as: `InvalidArgument` for two tokens, `Unauthenticated` for a bad one."""
    return authenticate(credentials_of(request))
