"""Reading names and numbers out of request paths and query strings."""

from __future__ import annotations

from urllib.parse import quote, unquote_to_bytes

from starlette.requests import HTTPConnection

from tidings.server.core import InvalidArgument

_UINT64_LIMIT = 2**64


def path_names(request: HTTPConnection, prefix: str) -> list[str]:
    """The percent-decoded segments of the request path after ``prefix`` (e.g. ``/topics/``).

    Read from the raw path, so a name may contain an encoded ``/`` (``%2F``): names are any UTF-8 without
    control characters (README *Errors clients see*), and a decoded path could not tell ``a%2Fb`` from ``a/b``.
    """
    raw: bytes | None = request.scope.get("raw_path")
    path = raw.decode("latin-1") if raw is not None else quote(request.scope["path"])
    segments = path[len(prefix) :].split("/")
    if "%" not in path and path.isascii():
        return segments  # nothing to decode (the common case)
    names: list[str] = []
    for segment in segments:
        try:
            names.append(unquote_to_bytes(segment).decode("utf-8"))
        except UnicodeDecodeError:
            raise InvalidArgument("names in the path must be UTF-8 (percent-encoded)") from None
    return names


def query_uint64(request: HTTPConnection, name: str) -> int:
    """The query parameter ``name`` as an unsigned 64-bit integer; 0 when absent or empty."""
    text = request.query_params.get(name)
    if not text:
        return 0
    if not (text.isascii() and text.isdigit() and len(text) <= 20 and int(text) < _UINT64_LIMIT):
        raise InvalidArgument(f"{name} must be an unsigned 64-bit integer")
    return int(text)
