"""Server settings: what ``tidings server`` flags and ``TIDINGS_*`` variables configure."""

from __future__ import annotations

import ipaddress
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from tidings.server.core import InvalidArgument, Limits, validate_name


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/tidings``, else ``~/.local/share/tidings``."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "tidings"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the composition root needs to build a server.

    ``data_dir``, ``tls_cert`` and ``tls_key`` may be given as ``str`` or ``Path``; they are ``Path`` after.
    ``http_port`` 0 turns HTTP off (its default is 8081, also when ``port`` is 0).
    """

    host: str = "127.0.0.1"
    port: int = 8080
    http_port: int = 8081
    data_dir: Path = field(default_factory=default_data_dir)
    create_caches: tuple[str, ...] = ()
    limits: Limits = field(default_factory=Limits)
    heartbeat_interval: float = 10.0
    subscribe_latest: int = 1
    http_long_poll_timeout: float = 30.0
    shutdown_grace: float = 5.0
    drain_timeout: float = 0.0
    require_auth: bool = False
    allow_anonymous: bool = False
    public_endpoint: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    key_refresh_interval: float = 0.5
    fault_injection: bool = False
    max_pending_calls: int = 10_000
    # What carries gRPC: grpc.aio (grpc-core) or tidings' own HTTP/2 server on asyncio + h2.
    grpc_transport: str = "grpcio"
    allow_fault_injection_with_auth: bool = False
    # The Redis engine and store (None: the memory engine and the SQLite store in data_dir).
    redis_url: str | None = None
    # Server processes sharing the ports (SO_REUSEPORT), supervised by the one started; more than 1 needs Redis.
    workers: int = 1

    def __post_init__(self) -> None:
        # Accept str paths too (``Settings(data_dir="/tmp/x")``); the fields are Paths from here on.
        object.__setattr__(self, "data_dir", Path(self.data_dir))
        for name in ("tls_cert", "tls_key"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, Path(getattr(self, name)))
        if not 0 <= self.port <= 65535:
            raise ValueError("port must be 0 to 65535")
        if not 0 <= self.http_port <= 65535:
            raise ValueError("http_port must be 0 to 65535")
        if not (0 < self.heartbeat_interval < math.inf):
            raise ValueError("heartbeat_interval must be positive and finite")
        if self.subscribe_latest < 0:
            raise ValueError("subscribe_latest must not be negative")
        if not (0 < self.http_long_poll_timeout < math.inf):
            raise ValueError("http_long_poll_timeout must be positive and finite")
        if not (0 <= self.drain_timeout < math.inf):
            raise ValueError("drain_timeout must be 0 or more, and finite")
        if self.require_auth and self.allow_anonymous:
            raise ValueError("--require-auth and --allow-anonymous contradict each other")
        if not self.require_auth and not self.allow_anonymous and not is_loopback(self.host):
            raise ValueError(
                f"refusing to serve {self.host} without authentication: pass --require-auth (every call needs a "
                "token) or, to accept anonymous callers from the network, --allow-anonymous"
            )
        for cache_name in self.create_caches:
            try:
                validate_name("cache_name", cache_name)
            except InvalidArgument as error:
                raise ValueError(f"--create-cache {cache_name!r}: {error.message}") from None
        if len(set(self.create_caches)) > self.limits.max_caches:
            raise ValueError(
                f"{len(set(self.create_caches))} caches to create exceed --max-caches {self.limits.max_caches}"
            )
        if self.max_pending_calls < 1:
            raise ValueError("max_pending_calls must be at least 1")
        if self.grpc_transport not in ("grpcio", "h2"):
            raise ValueError(f"--grpc-transport must be grpcio or h2, not {self.grpc_transport!r}")
        if self.fault_injection and self.require_auth and not self.allow_fault_injection_with_auth:
            raise ValueError(
                "--fault-injection lets any caller make calls fail; with --require-auth it also needs "
                "--allow-fault-injection-with-auth"
            )
        if self.redis_url is not None and not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("--redis-url must start with redis://, rediss:// or unix://")
        if self.workers < 1:
            raise ValueError("--workers must be at least 1")
        if self.workers > 1 and self.redis_url is None:
            raise ValueError("--workers above 1 needs --redis-url (the workers share topics through Redis)")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("--tls-cert and --tls-key go together")

    @property
    def anonymous_allowed(self) -> bool:
        """Whether calls without a token are served (as super-user)."""
        return not self.require_auth and (self.allow_anonymous or is_loopback(self.host))


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
