"""Builds the gRPC transport the settings name: grpc.aio with the options official clients need, or tidings' own
HTTP/2 transport; both behind one small interface (`GrpcTransport`), chosen once by `build_transport`."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Final

import grpc.aio

from tidings.server.auth import Authenticator, credential_from_header
from tidings.server.config import Settings
from tidings.server.core import TopicsService, Unauthenticated
from tidings.server.grpc._context import aio_handlers
from tidings.server.grpc._control import PING_SERVICE, ControlServicer, ping_handlers
from tidings.server.grpc._control import SERVICE as CONTROL_SERVICE
from tidings.server.grpc._faults import FaultInjectionInterceptor
from tidings.server.grpc._h2 import (
    IDLE_TIMEOUT,
    KEEPALIVE_TIME,
    KEEPALIVE_TIMEOUT,
    MAX_CONCURRENT_STREAMS,
    MAX_HEADER_LIST_SIZE,
    H2Server,
)
from tidings.server.grpc._pubsub import SERVICE as PUBSUB_SERVICE
from tidings.server.grpc._pubsub import PubsubServicer
from tidings.server.grpc._routes import CredentialCheck, GrpcMethods
from tidings.server.grpc._routes import MethodHandlers as MethodHandlers  # what `method_handlers` returns
from tidings.server.grpc._token import SERVICE as TOKEN_SERVICE
from tidings.server.grpc._token import TokenServicer
from tidings.server.grpc._transport import GrpcioTransport, H2Transport
from tidings.server.grpc._transport import GrpcTransport as GrpcTransport  # the interface `build_transport` returns
from tidings.server.grpc._webhook import SERVICE as WEBHOOK_SERVICE
from tidings.server.grpc._webhook import WebhookServicer
from tidings.server.webhooks import WebhookRegistry

# Room in a request for what surrounds a value (names, fields) and for the requests that carry no value
# (token permissions, webhooks). A value over --max-message-size but within this slack gets our
# RESOURCE_EXHAUSTED + `request_size_limit_exceeded`; a larger one is refused by grpcio before it is buffered.
ENVELOPE_SLACK: Final = 64 * 1024


DEFAULT_MAX_PENDING_CALLS: Final = 10_000


def receive_limit(max_message_bytes: int) -> int:
    """The largest request message the server reads: a value of the publish limit plus its envelope."""
    return max_message_bytes + ENVELOPE_SLACK


def server_options(
    max_message_bytes: int,
    max_connections: int,
    handshake_timeout: float,
    max_pending_calls: int = DEFAULT_MAX_PENDING_CALLS,
    reuse_port: bool = False,
    max_streams_per_connection: int = MAX_CONCURRENT_STREAMS,
    idle_timeout: float = IDLE_TIMEOUT,
) -> list[tuple[str, int]]:
    """Channel arguments for the server (README *Services*).

    Past ``max_connections`` a new connection is closed at once; one that has not sent its HTTP/2 preface
    and settings within ``handshake_timeout`` seconds is closed (README *What the server guards against*), and so is one
    without a call for ``idle_timeout`` seconds (GOAWAY first). grpcio has no option for what the h2 transport
    also bounds: connections per address, a request budget per connection, a token check before the body is
    read, a deadline for a request's body, the decoded header bytes per second.
    """
    return [
        # Clients ping every few seconds, also with no call in flight: allow it, never GOAWAY them.
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 1000),
        ("grpc.http2.max_ping_strikes", 0),
        # Find dead subscribers' connections within a minute and free their subscriptions.
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        # Unauthenticated callers can send this much per call before anything checks them: keep it small.
        ("grpc.max_receive_message_length", receive_limit(max_message_bytes)),
        # Nor let flow control invite megabytes per call before a message is checked: requests are small.
        ("grpc.http2.bdp_probe", 0),
        # Responses are the server's own (a cache list can be large): grpcio's default cap of 4 MiB does not apply.
        ("grpc.max_send_message_length", -1),
        # A request's headers, decoded (SETTINGS_MAX_HEADER_LIST_SIZE): as the h2 transport's.
        ("grpc.max_metadata_size", MAX_HEADER_LIST_SIZE),
        ("grpc.absolute_max_metadata_size", MAX_HEADER_LIST_SIZE),
        # Streams per connection (SETTINGS_MAX_CONCURRENT_STREAMS): past it grpc-core refuses new ones.
        ("grpc.max_concurrent_streams", max_streams_per_connection),
        # A connection without a call for this long gets GOAWAY and is closed; clients reconnect for the next.
        ("grpc.max_connection_idle_ms", max(1, round(idle_timeout * 1000))),
        # A second server on a busy port must fail to start, not share the port (unless it is a worker of one).
        ("grpc.so_reuseport", int(reuse_port)),
        # Calls that arrived but Python has not taken yet. grpc-core's defaults (1,000, hard limit 3,000) reset
        # a burst of new streams with CANCELLED, silently; this makes the limit the operator's, and explicit.
        ("grpc.server.max_pending_requests", max_pending_calls),
        ("grpc.server.max_pending_requests_hard_limit", max_pending_calls),
        ("grpc.max_allowed_incoming_connections", max_connections),
        ("grpc.server_handshake_timeout_ms", max(1, round(handshake_timeout * 1000))),
    ]


def method_handlers(
    service: TopicsService,
    authenticator: Authenticator,
    public_endpoint: Callable[[], str],
    webhooks: WebhookRegistry | None = None,
) -> MethodHandlers:
    """Pubsub, ScsControl, Token, Ping and (given ``webhooks``) Webhook handlers by service name: one servicer
    layer for both transports."""
    handlers = {
        PUBSUB_SERVICE: PubsubServicer(service, authenticator).handlers(),
        CONTROL_SERVICE: ControlServicer(service, authenticator).handlers(),
        TOKEN_SERVICE: TokenServicer(service, authenticator, public_endpoint).handlers(),
        PING_SERVICE: ping_handlers(),
    }
    if webhooks is not None:
        handlers[WEBHOOK_SERVICE] = WebhookServicer(service, webhooks, authenticator).handlers()
    return handlers


def grpc_methods(
    service: TopicsService,
    authenticator: Authenticator,
    public_endpoint: Callable[[], str],
    webhooks: WebhookRegistry | None = None,
    *,
    fault_injection: bool = False,
) -> GrpcMethods:
    """The methods the gRPC port serves, with its receive limit, token check and fault injection, for the HTTP
    port's gRPC-web."""
    handlers = method_handlers(service, authenticator, public_endpoint, webhooks)
    return GrpcMethods(
        handlers,
        receive_limit(service.limits.max_message_bytes),
        credential_check(authenticator, handlers),
        fault_injection,
    )


def build_grpc_server(
    service: TopicsService,
    authenticator: Authenticator,
    public_endpoint: Callable[[], str],
    *,
    fault_injection: bool = False,
    max_pending_calls: int = DEFAULT_MAX_PENDING_CALLS,
    reuse_port: bool = False,
    max_connections: int,
    handshake_timeout: float,
    webhooks: WebhookRegistry | None = None,
    max_streams_per_connection: int = MAX_CONCURRENT_STREAMS,
    idle_timeout: float = IDLE_TIMEOUT,
) -> grpc.aio.Server:
    """A grpc.aio server with Pubsub, ScsControl, Token, Ping and (given ``webhooks``) Webhook registered (no
    port bound yet).

    ``public_endpoint()`` (host:port) is what minted disposable tokens tell clients to connect to;
    ``fault_injection`` speaks Momento Local's fault-injection metadata (see ``_faults``).
    """
    interceptors = [FaultInjectionInterceptor()] if fault_injection else None
    options = server_options(
        service.limits.max_message_bytes,
        max_connections,
        handshake_timeout,
        max_pending_calls,
        reuse_port,
        max_streams_per_connection,
        idle_timeout,
    )
    server = grpc.aio.server(options=options, interceptors=interceptors)
    # Registered (not generic) handlers: grpcio routes them without a per-call lookup chain.
    register = server.add_registered_method_handlers  # type: ignore[attr-defined]  # missing from grpc-stubs
    for name, handlers in method_handlers(service, authenticator, public_endpoint, webhooks).items():
        register(name, aio_handlers(handlers))
    return server


def build_h2_server(
    service: TopicsService,
    authenticator: Authenticator,
    public_endpoint: Callable[[], str],
    *,
    fault_injection: bool = False,
    reuse_port: bool = False,
    ssl_context: ssl.SSLContext | None = None,
    webhooks: WebhookRegistry | None = None,
    max_connections: int = 1 << 30,
    handshake_timeout: float = 10.0,
    max_streams_per_connection: int = MAX_CONCURRENT_STREAMS,
    max_connections_per_address: int | None = None,
    idle_timeout: float = IDLE_TIMEOUT,
    keepalive: float | None = None,
) -> H2Server:
    """The same services on tidings' own HTTP/2 transport (``--grpc-transport h2``); `H2Server.start` binds it.

    Its connections check each request's token at its HEADERS (`credential_check`), so that a caller without a
    valid one cannot make the server hold its request's body. ``keepalive`` (a test hook) replaces both the
    seconds of silence before a keepalive ping and the seconds to wait for its answer.
    """
    handlers = method_handlers(service, authenticator, public_endpoint, webhooks)
    return H2Server(
        handlers,
        # The same receive limit as grpcio's: unauthenticated callers cannot make the server buffer more.
        max_message_length=receive_limit(service.limits.max_message_bytes),
        fault_injection=fault_injection,
        reuse_port=reuse_port,
        ssl_context=ssl_context,
        keepalive_time=keepalive or KEEPALIVE_TIME,
        keepalive_timeout=keepalive or KEEPALIVE_TIMEOUT,
        max_connections=max_connections,
        handshake_timeout=handshake_timeout,
        max_concurrent_streams=max_streams_per_connection,
        max_connections_per_address=max_connections_per_address,
        idle_timeout=idle_timeout,
        credential_check=credential_check(authenticator, handlers),
    )


def credential_check(authenticator: Authenticator, handlers: MethodHandlers) -> CredentialCheck:
    """What the h2 transport asks at a request's HEADERS, and gRPC-web before reading a body: (path,
    ``authorization`` value) -> None to go on, or why
    the call is UNAUTHENTICATED, by the servicers' own rule (``credential_of`` then ``authenticate``, whose
    verified credentials are cached).

    Ping takes no credential; GenerateDisposableToken may carry its caller's in the request (``auth_token``), so
    only a credential in its metadata is checked there.
    """
    unchecked = {f"/{PING_SERVICE}/{method}" for method in handlers.get(PING_SERVICE, {})}
    in_request = {f"/{TOKEN_SERVICE}/{method}" for method in handlers.get(TOKEN_SERVICE, {})}
    authenticate = authenticator.authenticate

    def check(path: str, authorization: str | None) -> str | None:
        if path in unchecked:
            return None
        credential = credential_from_header(authorization) if authorization is not None else None
        if credential is None and path in in_request:
            return None
        try:
            authenticate(credential)
        except Unauthenticated as error:
            return error.message
        return None

    return check


def build_transport(
    settings: Settings,
    service: TopicsService,
    authenticator: Authenticator,
    public_endpoint: Callable[[], str],
    webhooks: WebhookRegistry,
    max_connections: int,
) -> GrpcTransport:
    """The transport ``settings.grpc_transport`` names, with the services registered (built and bound by its
    `GrpcTransport.start`)."""
    reuse_port = settings.workers > 1
    if settings.grpc_transport == "h2":
        return H2Transport(
            lambda ssl_context: build_h2_server(
                service,
                authenticator,
                public_endpoint,
                fault_injection=settings.fault_injection,
                reuse_port=reuse_port,
                ssl_context=ssl_context,
                webhooks=webhooks,
                max_connections=max_connections,
                handshake_timeout=settings.request_timeout,
                max_streams_per_connection=settings.max_streams_per_connection,
                max_connections_per_address=settings.connections_per_address(max_connections),
                idle_timeout=settings.grpc_idle_timeout,
                keepalive=settings.test_h2_keepalive,
            ),
            reuse_port=reuse_port,
            tls=_tls_files(settings),
        )
    return GrpcioTransport(
        lambda: build_grpc_server(
            service,
            authenticator,
            public_endpoint,
            fault_injection=settings.fault_injection,
            max_pending_calls=settings.max_pending_calls,
            reuse_port=reuse_port,
            max_connections=max_connections,
            handshake_timeout=settings.request_timeout,
            webhooks=webhooks,
            max_streams_per_connection=settings.max_streams_per_connection,
            idle_timeout=settings.grpc_idle_timeout,
        ),
        reuse_port=reuse_port,
        tls=_tls_files(settings),
        max_pending_calls=settings.max_pending_calls,
    )


def _tls_files(settings: Settings) -> tuple[Path, Path] | None:
    """(certificate chain, private key) with ``--tls-cert`` and ``--tls-key``, else None."""
    if settings.tls_cert is not None and settings.tls_key is not None:
        return settings.tls_cert, settings.tls_key
    return None
