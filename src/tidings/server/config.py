"""Server settings: what ``tidings server`` flags and ``TIDINGS_*`` variables configure.

Each field that a flag sets carries its declaration (`tidings.server.options.Option`): the CLI's options, its
``--help`` and the README's configuration table are generated from them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tidings.server.core import InvalidArgument, Limits, validate_name
from tidings.server.options import InvalidSetting, SettingsFields, default_data_dir, options_of

__all__ = ["FLAGS", "LOOPBACK_HOSTS", "OPTIONS", "Settings", "default_data_dir", "is_loopback"]


@dataclass(frozen=True, slots=True)
class Settings(SettingsFields):
    """Everything the composition root needs to build a server.

    The fields, each with its flag, variable, help and range, are declared in `SettingsFields`.
    ``data_dir``, ``tls_cert`` and ``tls_key`` may be given as ``str`` or ``Path``; they are ``Path`` after.
    ``http_port`` 0 turns HTTP off (its default is 8081, also when ``port`` is 0).
    """

    def __post_init__(self) -> None:
        # Accept str paths too (``Settings(data_dir="/tmp/x")``); the fields are Paths from here on.
        object.__setattr__(self, "data_dir", Path(self.data_dir))
        for name in ("tls_cert", "tls_key"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, Path(getattr(self, name)))
        for option in OPTIONS:
            if option.within is None:
                option.check(getattr(self, option.name))
        self._check_access()
        self._check_caches()
        self._check_redis()
        if self.test_admin_port is not None:
            self._check_test_admin_port()
        for origin in self.cors_origins:
            if origin != "*" and "://" not in origin:
                raise ValueError(
                    _say("{cors_origins} {origin!r}: an origin is scheme://host[:port], or *", origin=origin)
                )
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError(_say("{tls_cert} and {tls_key} go together"))

    @classmethod
    def from_options(cls, values: Mapping[str, Any]) -> Settings:
        """Settings from the value of every declared option, keyed by its name (what ``tidings server`` read
        from flags and variables). ``redis_cluster`` is a URL or None here. Raises `InvalidSetting` or ValueError,
        whose messages name the flags."""
        values = dict(values)
        for option in OPTIONS:
            option.check(values[option.name])
            if option.at_least is not None and values[option.name] < values[option.at_least]:
                raise InvalidSetting(option, f"must be at least {FLAGS[option.at_least]}")
        cluster = values.pop("redis_cluster")
        if cluster is not None and values["redis_url"] is not None:
            raise ValueError(_say("{redis_url} and {redis_cluster} exclude each other"))
        values.update(redis_url=cluster or values["redis_url"], redis_cluster=cluster is not None)
        limits = {option.name: values.pop(option.name) for option in OPTIONS if option.within == "limits"}
        return cls(**values, limits=Limits(**limits))

    def _check_access(self) -> None:
        """Who may call: tokens, anonymous callers, fault injection."""
        if self.require_auth and self.allow_anonymous:
            raise ValueError(_say("{require_auth} and {allow_anonymous} contradict each other"))
        if not self.require_auth and not self.allow_anonymous and not is_loopback(self.host):
            raise ValueError(
                _say(
                    "refusing to serve {address} without authentication: pass {require_auth} (every call needs a "
                    "token) or, to accept anonymous callers from the network, {allow_anonymous}",
                    address=self.host,
                )
            )
        if self.fault_injection and self.require_auth and not self.allow_fault_injection_with_auth:
            raise ValueError(
                _say(
                    "{fault_injection} lets any caller make calls fail; with {require_auth} it also needs "
                    "{allow_fault_injection_with_auth}"
                )
            )

    def _check_caches(self) -> None:
        for cache_name in self.create_caches:
            try:
                validate_name("cache_name", cache_name)
            except InvalidArgument as error:
                raise ValueError(f"{FLAGS['create_caches']} {cache_name!r}: {error.message}") from None
        count = len(set(self.create_caches))
        if count > self.limits.max_caches:
            raise ValueError(f"{count} caches to create exceed {FLAGS['max_caches']} {self.limits.max_caches}")

    def _check_redis(self) -> None:
        if self.redis_url is not None and not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"{self.redis_flag} must start with redis://, rediss:// or unix://")
        if self.redis_cluster and self.redis_url is None:
            raise ValueError("redis_cluster needs a node's URL")
        if self.workers > 1 and self.redis_url is None:
            raise ValueError(
                _say("{workers} above 1 needs {redis_url} or {redis_cluster} (the workers share topics through Redis)")
            )

    def _check_test_admin_port(self) -> None:
        """The test-admin API lets any caller silence the server: a test tool, for one process."""
        if not self.fault_injection:
            raise ValueError(
                _say(
                    "{test_admin_port} needs {fault_injection} (its GET /block silences the gRPC port: for tests only)"
                )
            )
        if self.workers > 1:
            raise ValueError(
                _say("{test_admin_port} blocks one server process: it cannot be used with {workers} above 1")
            )

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
        return FLAGS["redis_cluster" if self.redis_cluster else "redis_url"]

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


OPTIONS = options_of(Settings)
"""Every option of `Settings`, in field order (the nested `Limits` ones where its field is)."""
FLAGS = {option.name: option.flag for option in OPTIONS}
"""The flag of each setting, by name: what error messages call it."""


def _say(template: str, **values: object) -> str:
    """``template`` with each ``{setting}`` spelled as its flag (and ``values`` filled in)."""
    return template.format(**FLAGS, **values)


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
