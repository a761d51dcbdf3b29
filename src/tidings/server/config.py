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
    # What carries gRPC: tidings' own HTTP/2 server on asyncio + h2 (the default, chosen by the figures of
    # docs/performance.md), or grpc.aio (grpc-core).
    grpc_transport: str = "h2"
    allow_fault_injection_with_auth: bool = False
    # Momento Local's test-admin API (GET /block, GET /unblock of the gRPC port) on this port; --fault-injection only.
    test_admin_port: int | None = None
    # The Redis engine and store (None: the memory engine and the SQLite store in data_dir).
    redis_url: str | None = None
    # The same with a Redis Cluster: any node's URL (keys and channel of a topic share a slot; sharded pub/sub).
    redis_cluster: bool = False
    # Server processes sharing the ports (SO_REUSEPORT), supervised by the one started; more than 1 needs Redis.
    workers: int = 1
    max_connections: int | None = None
    # Connections one client address may hold per transport (None: half of the transport's connection cap).
    max_connections_per_address: int | None = None
    # gRPC streams one connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS).
    max_streams_per_connection: int = 10_000
    http_idle_timeout: int = 5
    # Seconds a gRPC connection may stay open without a call before it is told to go away.
    grpc_idle_timeout: float = 300.0
    request_timeout: float = 10.0
    allowed_hosts: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] = ()
    # Webhook deliveries: the deadline of one POST, the attempts per message (0: retry for up to an hour), and
    # whether endpoints may be private addresses (None: only when the server listens on loopback).
    webhook_timeout: float = 5.0
    webhook_max_attempts: int = 0
    webhook_allow_private: bool | None = None

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
        if self.max_connections is not None and self.max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        if self.max_connections_per_address is not None and self.max_connections_per_address < 1:
            raise ValueError("max_connections_per_address must be at least 1")
        if self.max_streams_per_connection < 1:
            raise ValueError("max_streams_per_connection must be at least 1")
        if self.http_idle_timeout < 1:
            raise ValueError("http_idle_timeout must be at least 1")
        if not (0 < self.grpc_idle_timeout < math.inf):
            raise ValueError("grpc_idle_timeout must be positive and finite")
        if not (0 < self.request_timeout < math.inf):
            raise ValueError("request_timeout must be positive and finite")
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
        if self.test_admin_port is not None:
            self._check_test_admin_port(self.test_admin_port)
        if self.redis_url is not None and not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"{self.redis_flag} must start with redis://, rediss:// or unix://")
        if self.redis_cluster and self.redis_url is None:
            raise ValueError("redis_cluster needs a node's URL")
        if self.workers < 1:
            raise ValueError("--workers must be at least 1")
        if self.workers > 1 and self.redis_url is None:
            raise ValueError(
                "--workers above 1 needs --redis-url or --redis-cluster (the workers share topics through Redis)"
            )
        for origin in self.cors_origins:
            if origin != "*" and "://" not in origin:
                raise ValueError(f"--cors-origins {origin!r}: an origin is scheme://host[:port], or *")
        if not (0 < self.webhook_timeout < math.inf):
            raise ValueError("webhook_timeout must be positive and finite")
        if self.webhook_max_attempts < 0:
            raise ValueError("webhook_max_attempts must not be negative")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("--tls-cert and --tls-key go together")

    def _check_test_admin_port(self, port: int) -> None:
        """The test-admin API lets any caller silence the server: a test tool, for one process."""
        if not 0 <= port <= 65535:
            raise ValueError("--test-admin-port must be 0 to 65535")
        if not self.fault_injection:
            raise ValueError(
                "--test-admin-port needs --fault-injection (its GET /block silences the gRPC port: for tests only)"
            )
        if self.workers > 1:
            raise ValueError("--test-admin-port blocks one server process: it cannot be used with --workers above 1")

    def connections_per_address(self, max_connections: int) -> int:
        """Connections one address may hold on a transport that allows ``max_connections``:
        ``--max-connections-per-address``, else half of them (so that one address never takes them all)."""
        if self.max_connections_per_address is not None:
            return min(self.max_connections_per_address, max_connections)
        return max(1, max_connections // 2)

    @property
    def webhooks_reach_private(self) -> bool:
        """Whether webhooks may POST to loopback, private and link-local addresses."""
        return is_loopback(self.host) if self.webhook_allow_private is None else self.webhook_allow_private

    @property
    def redis_flag(self) -> str:
        """The flag that named the Redis in use, for messages: ``--redis-cluster`` or ``--redis-url``."""
        return "--redis-cluster" if self.redis_cluster else "--redis-url"

    @property
    def anonymous_allowed(self) -> bool:
        """Whether calls without a token are served (as super-user)."""
        return not self.require_auth and (self.allow_anonymous or is_loopback(self.host))

    @property
    def http_allowed_hosts(self) -> tuple[str, ...] | None:
        """Host names the HTTP API answers for: ``--allowed-hosts``, else loopback names (and the listening
        address) on loopback, else any (None)."""
        if self.allowed_hosts:
            return self.allowed_hosts
        if not is_loopback(self.host):
            return None
        listening = self.host.strip("[]").lower()
        return LOOPBACK_HOSTS if listening in LOOPBACK_HOSTS else (*LOOPBACK_HOSTS, listening)


# Host names the HTTP API answers for by default on loopback: names that always mean this machine.
LOOPBACK_HOSTS = ("localhost", "*.localhost", "127.0.0.1", "::1")


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
