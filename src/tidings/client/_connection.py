"""Where and how the SDK connects: endpoint, API key, TLS, timeout, and the gRPC channel built from them."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass
from datetime import timedelta
from typing import Any, Final, TypedDict

import grpc
import grpc.aio

DEFAULT_ENDPOINT: Final = "localhost:8080"
DEFAULT_TIMEOUT: Final = 5.0
ENDPOINT_VARIABLE: Final = "TIDINGS_ENDPOINT"
API_KEY_VARIABLE: Final = "TIDINGS_API_KEY"

_MAX_MESSAGE_BYTES: Final = 5 * 1024 * 1024
CHANNEL_OPTIONS: Final[tuple[tuple[str, int], ...]] = (
    # Keepalive pings every 10 s, also when no call is in flight, find a dead connection (and with it
    # every subscription on it) within seconds; servers of this protocol permit them.
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    # About what official clients accept each way.
    ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
    # Reconnect soon after a server restart: grpcio's default backoff grows to two minutes.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 3_000),
)


class ConnectionKeywords(TypedDict, total=False):
    """The keyword arguments of every client besides ``endpoint`` and ``api_key``: the keyword-only fields of
    `ConnectionOptions`."""

    tls: bool
    root_certificates: bytes | None
    timeout: float | timedelta
    headers: Mapping[str, str] | None


@dataclass(frozen=True, slots=True)
class ConnectionOptions:
    """Where and how a client connects: the one set of connection options every client takes.

    ``endpoint`` is the server's ``host:port`` (``grpc://`` accepted, ``grpcs://`` means ``tls=True``);
    ``api_key`` travels in the ``authorization`` header of every call (None is anonymous). ``tls=True``
    connects with TLS (``root_certificates`` in PEM, or the system's). ``timeout`` (seconds or a timedelta)
    bounds each unary call and the start of each subscription. ``headers`` are extra request metadata sent with
    every call. ``TopicClient(options)`` is ``TopicClient(endpoint, api_key, tls=..., ...)``; one value can
    configure several clients. Invalid options raise ValueError here.
    """

    endpoint: str = DEFAULT_ENDPOINT
    api_key: str | None = None
    _: KW_ONLY
    tls: bool = False
    root_certificates: bytes | None = None
    timeout: float | timedelta = DEFAULT_TIMEOUT
    headers: Mapping[str, str] | None = None

    def __post_init__(self) -> None:
        ConnectionSettings.of(self)  # refuse bad options now, not at the first call

    @classmethod
    def of(
        cls, endpoint: str | ConnectionOptions, api_key: str | None, keywords: ConnectionKeywords
    ) -> ConnectionOptions:
        """What a client constructor was given: options (with an ``api_key`` and keywords that override
        theirs), or an endpoint and keywords."""
        if not isinstance(endpoint, ConnectionOptions):
            return cls(endpoint, api_key, **keywords)
        changes: dict[str, Any] = {**keywords, **({} if api_key is None else {"api_key": api_key})}
        return dataclasses.replace(endpoint, **changes) if changes else endpoint

    @classmethod
    def from_env(cls, **overrides: Any) -> ConnectionOptions:
        """Options for ``TIDINGS_ENDPOINT`` (default ``localhost:8080``) with ``TIDINGS_API_KEY``; keyword
        arguments override them."""
        return cls(**arguments_from_env(overrides))


@dataclass(frozen=True, slots=True)
class ConnectionSettings:
    """`ConnectionOptions` checked and normalized: what a client's calls and channel use."""

    target: str
    api_key: str | None
    tls: bool
    root_certificates: bytes | None
    timeout: float
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, options: ConnectionOptions) -> ConnectionSettings:
        """Check and normalize ``options``; ``grpc://`` and ``grpcs://`` (TLS) prefixes are accepted."""
        endpoint, tls, timeout = options.endpoint, options.tls, options.timeout
        if not isinstance(endpoint, str) or not endpoint.strip():
            raise ValueError("endpoint must be a non-empty 'host:port' string")
        target = endpoint.strip()
        if target.startswith("grpcs://"):
            target, tls = target.removeprefix("grpcs://"), True
        elif target.startswith("grpc://"):
            target = target.removeprefix("grpc://")
        seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else float(timeout)
        if not seconds > 0:
            raise ValueError("timeout must be positive")
        if options.root_certificates is not None and not tls:
            raise ValueError("root_certificates needs tls=True")
        headers = _checked_headers(options.headers or {})
        return cls(target.rstrip("/"), options.api_key, tls, options.root_certificates, seconds, headers)

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        """Sent with every call: the API key in ``authorization`` (empty means anonymous), then ``headers``."""
        return (("authorization", self.api_key or ""), *self.headers)

    def open_channel(self) -> grpc.aio.Channel:
        """A new channel to the endpoint, bound to the running event loop."""
        if self.tls:
            credentials = grpc.ssl_channel_credentials(self.root_certificates)
            return grpc.aio.secure_channel(self.target, credentials, options=CHANNEL_OPTIONS)
        return grpc.aio.insecure_channel(self.target, options=CHANNEL_OPTIONS)


def _checked_headers(headers: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """Extra request metadata: lowercase ASCII names (gRPC's rule), text values, never ``authorization``."""
    checked = []
    for name, value in headers.items():
        if not (isinstance(name, str) and name and name.isascii() and name == name.lower() and " " not in name):
            raise ValueError(f"header names must be lowercase ASCII without spaces, got {name!r}")
        if name == "authorization" or name.endswith("-bin") or name.startswith("grpc-"):
            raise ValueError(f"header {name!r} cannot be set this way (use api_key for authorization)")
        if not isinstance(value, str) or not value.isascii() or not value.isprintable():
            raise ValueError(f"header {name!r} needs a printable ASCII value")
        checked.append((name, value))
    return tuple(checked)


def arguments_from_env(overrides: Mapping[str, object], environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Client constructor arguments from ``TIDINGS_ENDPOINT`` and ``TIDINGS_API_KEY``; ``overrides`` win."""
    environ = os.environ if environ is None else environ
    arguments: dict[str, Any] = {
        "endpoint": environ.get(ENDPOINT_VARIABLE) or DEFAULT_ENDPOINT,
        "api_key": environ.get(API_KEY_VARIABLE) or None,
    }
    arguments.update(overrides)
    return arguments
