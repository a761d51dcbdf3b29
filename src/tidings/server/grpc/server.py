"""Builds the grpc.aio server with the options official clients need."""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable
from typing import Any, Final

import grpc.aio

from tidings.server.auth import Authenticator
from tidings.server.core import TopicsService
from tidings.server.grpc._control import PING_SERVICE, ControlServicer, ping_handlers
from tidings.server.grpc._control import SERVICE as CONTROL_SERVICE
from tidings.server.grpc._faults import FaultInjectionInterceptor
from tidings.server.grpc._h2 import KEEPALIVE_TIME, KEEPALIVE_TIMEOUT, H2Server
from tidings.server.grpc._pubsub import SERVICE as PUBSUB_SERVICE
from tidings.server.grpc._pubsub import PubsubServicer
from tidings.server.grpc._token import SERVICE as TOKEN_SERVICE
from tidings.server.grpc._token import TokenServicer

# Official clients cap messages at about 5 MB; accept that much so oversized payloads get our
# RESOURCE_EXHAUSTED + err metadata instead of grpcio's bare refusal.
_MIN_MESSAGE_LENGTH: Final = 8 * 1024 * 1024


DEFAULT_MAX_PENDING_CALLS: Final = 10_000


def server_options(
    max_message_bytes: int, max_pending_calls: int = DEFAULT_MAX_PENDING_CALLS, reuse_port: bool = False
) -> list[tuple[str, int]]:
    """Channel arguments for the server (PROTOCOL.md *Transport details official clients rely on*)."""
    max_length = max_message_length(max_message_bytes)
    return [
        # Clients ping every few seconds, also with no call in flight: allow it, never GOAWAY them.
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 1000),
        ("grpc.http2.max_ping_strikes", 0),
        # Find dead subscribers' connections within a minute and free their subscriptions.
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.max_receive_message_length", max_length),
        ("grpc.max_send_message_length", max_length),
        # Room for an over-long authorization header, so it is refused as UNAUTHENTICATED, not a broken stream.
        ("grpc.max_metadata_size", 2 * 1024 * 1024),
        # A second server on a busy port must fail to start, not share the port (unless it is a worker of one).
        ("grpc.so_reuseport", int(reuse_port)),
        # Calls that arrived but Python has not taken yet. grpc-core's defaults (1,000, hard limit 3,000) reset
        # a burst of new streams with CANCELLED, silently; this makes the limit the operator's, and explicit.
        ("grpc.server.max_pending_requests", max_pending_calls),
        ("grpc.server.max_pending_requests_hard_limit", max_pending_calls),
    ]


MethodHandlers = dict[str, dict[str, "grpc.RpcMethodHandler[Any, Any]"]]


def method_handlers(
    service: TopicsService, authenticator: Authenticator, public_endpoint: Callable[[], str]
) -> MethodHandlers:
    """Pubsub, ScsControl, Token and Ping handlers by service name: one servicer layer for both transports."""
    return {
        PUBSUB_SERVICE: PubsubServicer(service, authenticator).handlers(),
        CONTROL_SERVICE: ControlServicer(service, authenticator).handlers(),
        TOKEN_SERVICE: TokenServicer(service, authenticator, public_endpoint).handlers(),
        PING_SERVICE: ping_handlers(),
    }


def build_grpc_server(
    service: TopicsService,
    authenticator: Authenticator,
    public_endpoint: Callable[[], str],
    *,
    fault_injection: bool = False,
    max_pending_calls: int = DEFAULT_MAX_PENDING_CALLS,
    reuse_port: bool = False,
) -> grpc.aio.Server:
    """A grpc.aio server with Pubsub, ScsControl, Token and Ping registered (no port bound yet).

    ``public_endpoint()`` (host:port) is what minted disposable tokens tell clients to connect to;
    ``fault_injection`` speaks Momento Local's fault-injection metadata (see ``_faults``).
    """
    interceptors = [FaultInjectionInterceptor()] if fault_injection else None
    options = server_options(service.limits.max_message_bytes, max_pending_calls, reuse_port)
    server = grpc.aio.server(options=options, interceptors=interceptors)
    # Registered (not generic) handlers: grpcio routes them without a per-call lookup chain.
    register = server.add_registered_method_handlers  # type: ignore[attr-defined]  # missing from grpc-stubs
    for name, handlers in method_handlers(service, authenticator, public_endpoint).items():
        register(name, handlers)
    return server


def max_message_length(max_message_bytes: int) -> int:
    """The largest gRPC message accepted either way: the limit on values plus room for the envelope."""
    return max(_MIN_MESSAGE_LENGTH, max_message_bytes + 64 * 1024)


def build_h2_server(
    service: TopicsService,
    authenticator: Authenticator,
    public_endpoint: Callable[[], str],
    *,
    fault_injection: bool = False,
    reuse_port: bool = False,
    ssl_context: ssl.SSLContext | None = None,
) -> H2Server:
    """The same services on tidings' own HTTP/2 transport (``--grpc-transport h2``); `H2Server.start` binds it."""
    # Test hook (keepalive tests): seconds of silence before a keepalive ping, and to wait for its answer.
    keepalive = os.environ.get("TIDINGS_TEST_H2_KEEPALIVE")
    return H2Server(
        method_handlers(service, authenticator, public_endpoint),
        max_message_length=max_message_length(service.limits.max_message_bytes),
        fault_injection=fault_injection,
        reuse_port=reuse_port,
        ssl_context=ssl_context,
        keepalive_time=float(keepalive) if keepalive else KEEPALIVE_TIME,
        keepalive_timeout=float(keepalive) if keepalive else KEEPALIVE_TIMEOUT,
    )
