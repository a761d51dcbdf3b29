"""Where HTTP requests carry their token (PROTOCOL.md *HTTP API*); token verification plugs in here.

Until tokens exist (issue 4) every request is anonymous, which a server on loopback treats as super-user.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection

from tidings.server.core import InvalidArgument

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


def authorize(request: HTTPConnection) -> None:
    """Let the request through if its caller may use the API.

    Reads the token (so a request with two tokens is refused now) but, until tokens can be verified, treats
    every caller as anonymous and allows it.
    """
    credentials_of(request)
