"""``tidings server``: run the server."""

from __future__ import annotations

import os
from pathlib import Path

import click

from tidings.cli._params import BYTE_SIZE, DataDirectoryUnusable, data_dir_option
from tidings.server._logs import LOG_FORMATS, LogFormat, configure_logging
from tidings.server.config import Settings
from tidings.server.core import Limits

_DEFAULTS = Settings()
_LIMITS = _DEFAULTS.limits
# Below these, the housekeeping loop would spin.
_MIN_INTERVAL = 0.1
# What Limits' validation messages call the flags.
_FLAG_OF_FIELD = {
    "max_message_bytes": "--max-message-size",
    "retention_bytes": "--retention-size",
    "retention_messages": "--retention-messages",
    "publish_rate_per_cache": "--publish-rate",
    "topic_idle_ttl": "--topic-idle-ttl",
    "max_topics_per_cache": "--max-topics-per-cache",
    "max_subscriptions_per_cache": "--max-subscriptions-per-cache",
    "max_caches": "--max-caches",
    "max_retained_bytes": "--max-retained-bytes",
    "subscribe_latest": "--subscribe-latest",
    "max_pending_calls": "--max-pending-calls",
    "webhook_timeout": "--webhook-timeout",
    "webhook_max_attempts": "--webhook-max-attempts",
    "heartbeat_interval": "--heartbeat-interval",
    "http_long_poll_timeout": "--http-long-poll-timeout",
    "request_timeout": "--request-timeout",
    "http_idle_timeout": "--http-idle-timeout",
    "max_connections_per_address": "--max-connections-per-address",
    "max_streams_per_connection": "--max-streams-per-connection",
    "grpc_idle_timeout": "--grpc-idle-timeout",
    "max_connections": "--max-connections",
    "drain_timeout": "--drain-timeout",
}


def _worker_count(value: str) -> int:
    """``--workers``: a positive number, or ``auto`` for the cores this process may run on."""
    if value == "auto":
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        count = int(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a number or 'auto'") from None
    if count < 1:
        raise click.BadParameter("must be at least 1")
    return count


@click.command()
@click.option("--host", default=_DEFAULTS.host, show_default=True, envvar="TIDINGS_HOST", help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=_DEFAULTS.port,
    show_default=True,
    envvar="TIDINGS_PORT",
    help="gRPC port (8080 is what CredentialProvider.for_momento_local() uses; 0 picks a free one).",
)
@click.option(
    "--http-port",
    type=click.IntRange(0, 65535),
    default=_DEFAULTS.http_port,
    show_default=True,
    envvar="TIDINGS_HTTP_PORT",
    help="HTTP port (HTTP API, browser stream, console, /metrics; 0 disables it).",
)
@data_dir_option
@click.option(
    "--create-cache",
    "create_caches",
    multiple=True,
    metavar="NAME",
    envvar="TIDINGS_CREATE_CACHE",
    help="Ensure this cache exists at start (repeatable; the variable takes space-separated names).",
)
@click.option(
    "--max-message-size",
    type=BYTE_SIZE,
    default=_LIMITS.max_message_bytes,
    show_default=True,
    envvar="TIDINGS_MAX_MESSAGE_SIZE",
    help="Largest published value.",
)
@click.option(
    "--max-subscriptions-per-cache",
    type=click.IntRange(1),
    default=_LIMITS.max_subscriptions_per_cache,
    show_default=True,
    envvar="TIDINGS_MAX_SUBSCRIPTIONS_PER_CACHE",
    help="Open subscriptions allowed per cache.",
)
@click.option(
    "--publish-rate",
    type=click.FloatRange(0, min_open=True),
    default=None,
    show_default="unlimited",
    envvar="TIDINGS_PUBLISH_RATE",
    help="Publishes per second allowed per cache (token bucket).",
)
@click.option(
    "--retention-messages",
    type=click.IntRange(1),
    default=_LIMITS.retention_messages,
    show_default=True,
    envvar="TIDINGS_RETENTION_MESSAGES",
    help="Messages retained per topic for resume.",
)
@click.option(
    "--retention-size",
    type=BYTE_SIZE,
    default=_LIMITS.retention_bytes,
    show_default=True,
    envvar="TIDINGS_RETENTION_SIZE",
    help="Memory each topic's retained messages may hold (their values and cached encodings), for resume.",
)
@click.option(
    "--max-retained-bytes",
    type=BYTE_SIZE,
    default=_LIMITS.max_retained_bytes,
    show_default=True,
    envvar="TIDINGS_MAX_RETAINED_BYTES",
    help="Bytes all topics' retention buffers hold together; beyond it the least recently published are emptied.",
)
@click.option(
    "--max-caches",
    type=click.IntRange(1),
    default=_LIMITS.max_caches,
    show_default=True,
    envvar="TIDINGS_MAX_CACHES",
    help="Most caches the server holds.",
)
@click.option(
    "--max-topics-per-cache",
    type=click.IntRange(1),
    default=_LIMITS.max_topics_per_cache,
    show_default=True,
    envvar="TIDINGS_MAX_TOPICS_PER_CACHE",
    help="Live topic instances allowed per cache (each retains up to --retention-size).",
)
@click.option(
    "--topic-idle-ttl",
    type=click.FloatRange(_MIN_INTERVAL),
    default=_LIMITS.topic_idle_ttl,
    show_default=True,
    envvar="TIDINGS_TOPIC_IDLE_TTL",
    help="Seconds without subscribers or publishes before a topic instance is retired.",
)
@click.option(
    "--heartbeat-interval",
    type=click.FloatRange(_MIN_INTERVAL),
    default=_DEFAULTS.heartbeat_interval,
    show_default=True,
    envvar="TIDINGS_HEARTBEAT_INTERVAL",
    help="Seconds of silence after which a stream gets a heartbeat.",
)
@click.option(
    "--subscribe-latest",
    type=click.IntRange(0),
    default=_DEFAULTS.subscribe_latest,
    show_default=True,
    envvar="TIDINGS_SUBSCRIBE_LATEST",
    metavar="N",
    help="A subscribe without a resume position starts with the newest N retained messages (0: live only).",
)
@click.option(
    "--http-long-poll-timeout",
    type=click.FloatRange(_MIN_INTERVAL),
    default=_DEFAULTS.http_long_poll_timeout,
    show_default=True,
    envvar="TIDINGS_HTTP_LONG_POLL_TIMEOUT",
    help="Seconds an HTTP long-poll waits for messages before answering with none.",
)
@click.option(
    "--drain-timeout",
    type=click.FloatRange(0),
    default=_DEFAULTS.drain_timeout,
    show_default=True,
    envvar="TIDINGS_DRAIN_TIMEOUT",
    help="On SIGTERM/SIGINT, refuse new calls but keep serving open streams for up to this many seconds "
    "(until their clients finish); 0 ends them at once. A second signal ends the wait.",
)
@click.option(
    "--max-connections",
    type=click.IntRange(1),
    default=None,
    show_default="10000, within the open-files limit",
    envvar="TIDINGS_MAX_CONNECTIONS",
    help="Open connections allowed per transport (gRPC, HTTP); past it new ones are refused.",
)
@click.option(
    "--max-connections-per-address",
    type=click.IntRange(1),
    default=None,
    show_default="half of --max-connections",
    envvar="TIDINGS_MAX_CONNECTIONS_PER_ADDRESS",
    help="Open connections one client address may hold per transport; past it its new ones are refused. Behind "
    "a proxy or NAT that hides client addresses, set it to --max-connections.",
)
@click.option(
    "--max-streams-per-connection",
    type=click.IntRange(1),
    default=_DEFAULTS.max_streams_per_connection,
    show_default=True,
    envvar="TIDINGS_MAX_STREAMS_PER_CONNECTION",
    help="gRPC calls (subscriptions included) one connection may have open at once (HTTP/2 "
    "SETTINGS_MAX_CONCURRENT_STREAMS); clients queue calls beyond it.",
)
@click.option(
    "--grpc-idle-timeout",
    type=click.FloatRange(_MIN_INTERVAL),
    default=_DEFAULTS.grpc_idle_timeout,
    show_default=True,
    envvar="TIDINGS_GRPC_IDLE_TIMEOUT",
    help="Seconds a gRPC connection may stay open without a call (pings do not count) before it is closed "
    "(GOAWAY); clients reconnect for their next call.",
)
@click.option(
    "--http-idle-timeout",
    type=click.IntRange(1),
    default=_DEFAULTS.http_idle_timeout,
    show_default=True,
    envvar="TIDINGS_HTTP_IDLE_TIMEOUT",
    help="Seconds an HTTP connection may stay open with no request before it is closed.",
)
@click.option(
    "--request-timeout",
    type=click.FloatRange(_MIN_INTERVAL),
    default=_DEFAULTS.request_timeout,
    show_default=True,
    envvar="TIDINGS_REQUEST_TIMEOUT",
    help="Seconds a connection has to send a whole HTTP request, or its gRPC (HTTP/2) preface and settings.",
)
@click.option(
    "--allowed-hosts",
    "allowed_hosts",
    multiple=True,
    metavar="NAME",
    envvar="TIDINGS_ALLOWED_HOSTS",
    show_default="loopback names on loopback, else any",
    help="Host name the HTTP API answers for (repeatable; *.example.com and * allowed; the variable takes "
    "space-separated names). Other Host headers get 421.",
)
@click.option(
    "--cors-origins",
    "cors_origins",
    multiple=True,
    metavar="ORIGIN",
    envvar="TIDINGS_CORS_ORIGINS",
    help="Web origin (https://app.example.com, or *) allowed to use the HTTP API from a browser: CORS answers, "
    "and its state-changing requests are not refused (repeatable; the variable takes space-separated origins).",
)
@click.option(
    "--require-auth",
    is_flag=True,
    envvar="TIDINGS_REQUIRE_AUTH",
    help="Every call needs a valid token (API key or disposable token).",
)
@click.option(
    "--allow-anonymous",
    is_flag=True,
    envvar="TIDINGS_ALLOW_ANONYMOUS",
    help="Serve calls without a token (as super-user) also on a non-loopback host.",
)
@click.option(
    "--public-endpoint",
    metavar="HOST:PORT",
    envvar="TIDINGS_PUBLIC_ENDPOINT",
    help="Where clients reach this server; put in minted tokens (default: the listening address).",
)
@click.option(
    "--tls-cert",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    envvar="TIDINGS_TLS_CERT",
    help="PEM certificate chain: serve over TLS (with --tls-key).",
)
@click.option(
    "--tls-key",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    envvar="TIDINGS_TLS_KEY",
    help="PEM private key of --tls-cert.",
)
@click.option(
    "--max-pending-calls",
    type=click.IntRange(1),
    default=_DEFAULTS.max_pending_calls,
    show_default=True,
    envvar="TIDINGS_MAX_PENDING_CALLS",
    metavar="N",
    help="gRPC calls that may wait to be taken by the server; beyond it new calls are reset (CANCELLED).",
)
@click.option(
    "--grpc-transport",
    type=click.Choice(["grpcio", "h2"]),
    default=_DEFAULTS.grpc_transport,
    show_default=True,
    envvar="TIDINGS_GRPC_TRANSPORT",
    help="What serves gRPC: h2 (tidings' own HTTP/2 server on asyncio + h2) or grpcio (grpc.aio).",
)
@click.option(
    "--fault-injection",
    is_flag=True,
    envvar="TIDINGS_FAULT_INJECTION",
    help="Speak Momento Local's fault-injection metadata (return-error, delay-ms, stream-error...): for tests only.",
)
@click.option(
    "--allow-fault-injection-with-auth",
    is_flag=True,
    envvar="TIDINGS_ALLOW_FAULT_INJECTION_WITH_AUTH",
    help="Allow --fault-injection together with --require-auth.",
)
@click.option(
    "--test-admin-port",
    type=click.IntRange(0, 65535),
    default=None,
    metavar="PORT",
    envvar="TIDINGS_TEST_ADMIN_PORT",
    help="Serve Momento Local's test-admin API on this port: GET /block silences the gRPC port, GET /unblock "
    "restores it. Needs --fault-injection; for tests only.",
)
@click.option(
    "--redis-url",
    metavar="URL",
    envvar="TIDINGS_REDIS_URL",
    help="Keep topics, caches and keys in this Redis (redis://host:port/db), shared by every server using it.",
)
@click.option(
    "--redis-cluster",
    metavar="URL",
    envvar="TIDINGS_REDIS_CLUSTER",
    help="Like --redis-url, with a Redis Cluster (7+): the URL of any of its nodes.",
)
@click.option(
    "--workers",
    metavar="N|auto",
    default="1",
    show_default=True,
    envvar="TIDINGS_WORKERS",
    callback=lambda _ctx, _param, value: _worker_count(value),
    help="Server processes sharing the ports (SO_REUSEPORT), restarted if they die; auto = one per core. "
    "Above 1 needs --redis-url.",
)
@click.option(
    "--webhook-timeout",
    type=float,
    default=5.0,
    show_default=True,
    metavar="SECONDS",
    envvar="TIDINGS_WEBHOOK_TIMEOUT",
    help="Deadline of one webhook POST (connect, send, answer); slower is a failure, retried.",
)
@click.option(
    "--webhook-max-attempts",
    type=int,
    default=0,
    show_default=True,
    envvar="TIDINGS_WEBHOOK_MAX_ATTEMPTS",
    help="Attempts per message before a webhook gives it up; 0 = keep retrying for up to an hour.",
)
@click.option(
    "--webhook-allow-private/--webhook-deny-private",
    default=None,
    envvar="TIDINGS_WEBHOOK_ALLOW_PRIVATE",
    help="Let webhooks POST to loopback, private and link-local addresses. Default: allowed only when the "
    "server listens on loopback.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
    envvar="TIDINGS_LOG_LEVEL",
)
@click.option(
    "--log-format",
    type=click.Choice(LOG_FORMATS),
    default="text",
    show_default=True,
    envvar="TIDINGS_LOG_FORMAT",
    help="text: one readable line per record; json: one JSON object per line (time, level, logger, message).",
)
@click.option(
    "--log-third-party",
    is_flag=True,
    envvar="TIDINGS_LOG_THIRD_PARTY",
    help="Also log other libraries' DEBUG and INFO records (hpack, httpx, grpc, redis...), dropped otherwise: "
    "they may contain credentials (authorization headers, webhook URLs). For debugging a library only.",
)
def server(
    host: str,
    port: int,
    http_port: int,
    data_dir: Path,
    create_caches: tuple[str, ...],
    max_message_size: int,
    max_subscriptions_per_cache: int,
    publish_rate: float | None,
    retention_messages: int,
    retention_size: int,
    max_retained_bytes: int,
    max_caches: int,
    max_topics_per_cache: int,
    topic_idle_ttl: float,
    heartbeat_interval: float,
    subscribe_latest: int,
    http_long_poll_timeout: float,
    drain_timeout: float,
    max_connections: int | None,
    max_connections_per_address: int | None,
    max_streams_per_connection: int,
    grpc_idle_timeout: float,
    http_idle_timeout: int,
    request_timeout: float,
    allowed_hosts: tuple[str, ...],
    cors_origins: tuple[str, ...],
    require_auth: bool,
    allow_anonymous: bool,
    public_endpoint: str | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    max_pending_calls: int,
    grpc_transport: str,
    fault_injection: bool,
    allow_fault_injection_with_auth: bool,
    test_admin_port: int | None,
    redis_url: str | None,
    redis_cluster: str | None,
    workers: int,
    webhook_timeout: float,
    webhook_max_attempts: int,
    webhook_allow_private: bool | None,
    log_level: str,
    log_format: LogFormat,
    log_third_party: bool,
) -> None:
    """Run the tidings server (gRPC, Momento-compatible, and HTTP) until SIGINT or SIGTERM."""
    from tidings.server.app import run
    from tidings.server.store import DataDirectoryError

    if redis_url and redis_cluster:
        raise click.UsageError("--redis-url and --redis-cluster exclude each other")
    try:
        limits = Limits(
            max_message_bytes=max_message_size,
            max_subscriptions_per_cache=max_subscriptions_per_cache,
            publish_rate_per_cache=publish_rate,
            retention_messages=retention_messages,
            retention_bytes=retention_size,
            max_retained_bytes=max_retained_bytes,
            max_caches=max_caches,
            max_topics_per_cache=max_topics_per_cache,
            topic_idle_ttl=topic_idle_ttl,
        )
        settings = Settings(
            host=host,
            port=port,
            http_port=http_port,
            data_dir=data_dir,
            create_caches=create_caches,
            limits=limits,
            heartbeat_interval=heartbeat_interval,
            subscribe_latest=subscribe_latest,
            http_long_poll_timeout=http_long_poll_timeout,
            drain_timeout=drain_timeout,
            max_connections=max_connections,
            max_connections_per_address=max_connections_per_address,
            max_streams_per_connection=max_streams_per_connection,
            grpc_idle_timeout=grpc_idle_timeout,
            http_idle_timeout=http_idle_timeout,
            request_timeout=request_timeout,
            allowed_hosts=allowed_hosts,
            cors_origins=cors_origins,
            require_auth=require_auth,
            allow_anonymous=allow_anonymous,
            public_endpoint=public_endpoint,
            tls_cert=tls_cert,
            tls_key=tls_key,
            max_pending_calls=max_pending_calls,
            grpc_transport=grpc_transport,
            fault_injection=fault_injection,
            allow_fault_injection_with_auth=allow_fault_injection_with_auth,
            test_admin_port=test_admin_port,
            redis_url=redis_cluster or redis_url,
            redis_cluster=redis_cluster is not None,
            workers=workers,
            webhook_timeout=webhook_timeout,
            webhook_max_attempts=webhook_max_attempts,
            webhook_allow_private=webhook_allow_private,
        )
    except ValueError as error:
        message = str(error)
        for field_name, flag in _FLAG_OF_FIELD.items():
            message = message.replace(field_name, flag)
        raise click.UsageError(message) from None
    configure_logging(log_level, log_format, third_party=log_third_party)
    try:
        run(settings)
    except DataDirectoryError as error:
        raise DataDirectoryUnusable(str(error)) from None
    except (OSError, ValueError) as error:
        raise click.ClickException(str(error)) from None
