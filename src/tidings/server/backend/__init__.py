"""Backends: where topics and state live, one object chosen once.

`LocalBackend` (memory engine, SQLite store, the data directory's lock, leases that always grant) or
`RedisBackend` (Redis engine, Redis store and webhook leases on connections it owns; a Redis Cluster is a
configuration of it). Each is an async context manager that owns its parts and closes them in reverse order.
Beside them: the authenticator a server builds on a backend, and the loop keeping its keys current.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tidings.server.backend._keys import open_authenticator, watch_keys
from tidings.server.backend._local import LocalBackend
from tidings.server.backend._seam import Backend, RefreshLog, ServerStore
from tidings.server.config import Settings

if TYPE_CHECKING:
    from tidings.server.backend._redis import RedisBackend


def open_backend(settings: Settings) -> Backend:
    """The backend ``settings`` name, not opened yet (``async with``): Redis with ``redis_url``, else local.

    The Redis backend's module (and redis-py, a third of a server's start-up imports) is imported only here,
    when it is the one named."""
    if settings.redis_url is None:
        return LocalBackend(settings)
    from tidings.server.backend._redis import RedisBackend

    return RedisBackend(settings)


def __getattr__(name: str) -> Any:
    """``RedisBackend``, imported on first use (see `open_backend`)."""
    if name == "RedisBackend":
        from tidings.server.backend._redis import RedisBackend

        return RedisBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Backend",
    "LocalBackend",
    "RedisBackend",
    "RefreshLog",
    "ServerStore",
    "open_authenticator",
    "open_backend",
    "watch_keys",
]
