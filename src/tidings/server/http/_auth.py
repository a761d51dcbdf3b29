"""Where HTTP requests carry their token (docs/http.md *Tokens*) and who the caller is.

The token is verified by the same `Authenticator` as gRPC's ``authorization`` metadata, so a token means the
same over both transports; permissions are the core's business (it gets the `Principal`).
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import HTTPConnection

from tidings.server.auth import credential_from_header
from tidings.server.core import InvalidArgument, Principal

Authenticate = Callable[[str | None], Principal]
"""Credential (None: none) -> the principal behind it, or `Unauthenticated` (``Authenticator.authenticate``)."""


def credentials_of(request: HTTPConnection) -> str | None:
    """The token a request carries in ``Authorization`` (raw or ``Bearer``) or ``?token=``; None if neither.

    Both at once, or two ``token`` parameters, is `InvalidArgument` (400): which one would be meant is a guess.
    An empty token is anonymous, as an empty gRPC ``authorization`` header is.
    """
    header = request.headers.getlist("authorization")
    query = request.query_params.getlist("token") if request.scope.get("query_string") else []
    if len(header) > 1 or len(query) > 1:
        raise InvalidArgument("send one token: the request has more than one")
    if header and query:
        raise InvalidArgument("send the token in the Authorization header or the token query parameter, not both")
    token = header or query
    return credential_from_header(token[0]) if token else None


def authorize(request: HTTPConnection, authenticate: Authenticate) -> Principal:
    """The principal the request acts as: `InvalidArgument` for two tokens, `Unauthenticated` for a bad one."""
    return authenticate(credentials_of(request))
