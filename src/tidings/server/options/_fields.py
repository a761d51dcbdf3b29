"""The fields of the server's settings, each declared once: flag, variable, help, unit and range."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tidings.server.core import Limits
from tidings.server.options._option import Option, declared, declared_factory, nested

# Below this, the housekeeping loop would spin: the least the interval flags accept.
_MIN_INTERVAL = 0.1


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/tidings``, else ``~/.local/share/tidings``."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "tidings"


def _interval(flag: str, help: str) -> Option:
    """A duration in seconds: positive and finite, and at least 0.1 from the command line."""
    return Option(flag, help, "seconds", above=0, flag_minimum=_MIN_INTERVAL)


def _count(flag: str, help: str, *, metavar: str | None = None, shown_default: str | None = None) -> Option:
    """A count of at least 1."""
    return Option(flag, help, "integer", metavar=metavar, minimum=1, shown_default=shown_default)


def _port(flag: str, help: str, *, metavar: str | None = None, shown_default: str | None = None) -> Option:
    return Option(flag, help, "integer", metavar=metavar, minimum=0, maximum=65535, shown_default=shown_default)


def _switch(flag: str, help: str) -> Option:
    return Option(flag, help, "flag")


_LIMITS = nested(
    Limits,
    max_message_bytes=Option(
        "--max-message-size",
        "Largest published value, in bytes (`4KiB`, `1MiB` accepted; 4 KiB as Momento); a gRPC request may be "
        "64 KiB larger (names, fields), a larger one is refused before it is read.",
        "bytes",
        minimum=1,
    ),
    max_subscriptions_per_cache=_count("--max-subscriptions-per-cache", "Open subscriptions per cache."),
    publish_rate_per_cache=Option(
        "--publish-rate",
        "Publishes per second per cache (token bucket, burst = one second's worth).",
        "number",
        above=0,
        shown_default="unlimited",
    ),
    retention_messages=_count("--retention-messages", "Messages each topic keeps for resume."),
    retention_bytes=Option(
        "--retention-size",
        "Memory each topic's retained messages may hold, their values and the wire encodings cached on them "
        "(at least `--max-message-size`).",
        "bytes",
        minimum=1,
        at_least="max_message_bytes",
    ),
    max_retained_bytes=Option(
        "--max-retained-bytes",
        "Memory all topics' retained messages may hold together; beyond it the buffers of the topics published "
        "to least recently are emptied first (`tidings_retained_bytes` in `/metrics`); with the Redis engine a "
        "node's copies are bounded per topic only.",
        "bytes",
        minimum=1,
        at_least="retention_bytes",
    ),
    max_caches=_count("--max-caches", "Most caches the server holds."),
    max_topics_per_cache=_count(
        "--max-topics-per-cache", "Live topic instances per cache (each retains up to `--retention-size`)."
    ),
    topic_idle_ttl=_interval(
        "--topic-idle-ttl",
        "Seconds without subscribers or publishes before a topic is retired (its next use starts a new page).",
    ),
)


@dataclass(frozen=True, slots=True)
class SettingsFields:
    """The fields of `tidings.server.config.Settings`, each with its declaration; `Settings` adds the rules
    between them."""

    host: str = declared("127.0.0.1", Option("--host", "Address to listen on."))
    port: int = declared(
        8080, _port("--port", "gRPC port (what `CredentialProvider.for_momento_local()` uses); `0` picks a free port.")
    )
    http_port: int = declared(
        8081,
        _port(
            "--http-port",
            "HTTP API, browser stream, gRPC-web, console, `/metrics` ([docs/http.md](docs/http.md), "
            "[docs/browser.md](docs/browser.md)); `0` disables it.",
        ),
    )
    data_dir: Path = declared_factory(  # noqa: RUF009  # a field specifier, as field() is
        default_data_dir,
        Option(
            "--data-dir",
            "Where caches are stored (`tidings.sqlite3`); one server at a time (locked: a second one exits naming "
            "the first's pid); a Redis node keeps only its deployment's admin key file there and shares the "
            "directory ([docs/deploy.md](docs/deploy.md#the-data-directory-of-a-redis-node)).",
            "directory",
            shown_default="`$XDG_DATA_HOME/tidings` or `~/.local/share/tidings`",
        ),
    )
    create_caches: tuple[str, ...] = declared(
        (), Option("--create-cache", "Ensure these caches exist at start; repeatable.", "names", metavar="NAME")
    )
    limits: Limits = _LIMITS
    heartbeat_interval: float = declared(
        10.0, _interval("--heartbeat-interval", "Seconds of silence after which a stream gets a heartbeat.")
    )
    subscribe_latest: int = declared(
        1,
        Option(
            "--subscribe-latest",
            "A subscribe without a resume position starts with the newest N retained messages; 0 = live only.",
            "integer",
            metavar="N",
            minimum=0,
        ),
    )
    http_long_poll_timeout: float = declared(
        30.0,
        _interval(
            "--http-long-poll-timeout", "Seconds an HTTP long poll waits for messages before answering with none."
        ),
    )
    shutdown_grace: float = 5.0
    drain_timeout: float = declared(
        0.0,
        Option(
            "--drain-timeout",
            "On SIGTERM/SIGINT, seconds open streams keep being served (new calls refused) before they end; `0`: "
            "at once. A second signal ends the wait.",
            "seconds",
            minimum=0,
        ),
    )
    require_auth: bool = declared(False, _switch("--require-auth", "Every call needs a valid token."))
    allow_anonymous: bool = declared(
        False, _switch("--allow-anonymous", "Serve calls without a token also on a non-loopback host.")
    )
    public_endpoint: str | None = declared(
        None,
        Option(
            "--public-endpoint",
            "`host:port` put in minted disposable tokens.",
            metavar="HOST:PORT",
            shown_default="the listening address",
        ),
    )
    tls_cert: Path | None = declared(  # noqa: RUF009  # a field specifier
        None, Option("--tls-cert", "PEM certificate chain: serve over TLS (with `--tls-key`).", "file")
    )
    tls_key: Path | None = declared(  # noqa: RUF009  # a field specifier
        None, Option("--tls-key", "PEM private key of `--tls-cert`.", "file")
    )
    key_refresh_interval: float = 0.5
    fault_injection: bool = declared(
        False,
        _switch(
            "--fault-injection",
            "Speak Momento Local's fault-injection metadata, for testing applications' retries "
            "([docs/testing.md](docs/testing.md)); refused with `--require-auth` unless "
            "`--allow-fault-injection-with-auth`.",
        ),
    )
    max_pending_calls: int = declared(
        10_000,
        _count(
            "--max-pending-calls",
            "With `--grpc-transport grpcio`: gRPC calls that may wait to be taken by the server during a burst; "
            "beyond it grpc resets new calls (`CANCELLED`), which tidings' SDK retries (the `h2` transport takes "
            "each call as its request arrives).",
            metavar="N",
        ),
    )
    # What carries gRPC: tidings' own HTTP/2 server on asyncio + h2 (the default, chosen by the figures of
    # docs/performance.md), or grpc.aio (grpc-core).
    grpc_transport: str = declared(
        "h2",
        Option(
            "--grpc-transport",
            "What serves gRPC: `h2`, tidings' own HTTP/2 server on asyncio + `h2`, or `grpcio` (grpc.aio); same "
            "methods, metadata, statuses, TLS and keepalive. `h2` is the default for its figures: about a fifth "
            "of grpc.aio's CPU per delivery, 5 KiB instead of 23 KiB per idle subscription (docs/performance.md).",
            choices=("grpcio", "h2"),
        ),
    )
    allow_fault_injection_with_auth: bool = declared(
        False,
        _switch("--allow-fault-injection-with-auth", "Allow `--fault-injection` together with `--require-auth`."),
    )
    # Momento Local's test-admin API (GET /block, GET /unblock of the gRPC port) on this port; --fault-injection only.
    test_admin_port: int | None = declared(
        None,
        _port(
            "--test-admin-port",
            "Serve Momento Local's test-admin API on this port (same host): `GET /block` silences the gRPC port, "
            "`GET /unblock` restores it ([docs/testing.md](docs/testing.md)); needs `--fault-injection`, not "
            "with `--workers` above 1.",
            metavar="PORT",
            shown_default="off",
        ),
    )
    # The Redis engine and store (None: the memory engine and the SQLite store in data_dir).
    redis_url: str | None = declared(
        None,
        Option(
            "--redis-url",
            "Keep topics, caches, API keys and the signing secret in this Redis (`redis://host:port/db`), shared "
            "by every server using it ([docs/deploy.md](docs/deploy.md)).",
            metavar="URL",
            shown_default="none (memory engine, SQLite store)",
        ),
    )
    # The same with a Redis Cluster: any node's URL (keys and channel of a topic share a slot; sharded pub/sub).
    # Its flag takes the URL, which goes to redis_url (`Settings.from_options`).
    redis_cluster: bool = declared(
        False,
        Option(
            "--redis-cluster",
            "The same with a Redis Cluster (7+): the URL of any node; each topic lives on one shard (sharded pub/sub).",
            metavar="URL",
            shown_default="none",
        ),
    )
    # Server processes sharing the ports (SO_REUSEPORT), supervised by the one started; more than 1 needs Redis.
    workers: int = declared(
        1,
        Option(
            "--workers",
            "Server processes sharing the ports (`SO_REUSEPORT`), supervised, restarted if they die; `auto` = one "
            "per core; above 1 needs `--redis-url`.",
            "workers",
            metavar="N|auto",
            minimum=1,
        ),
    )
    max_connections: int | None = declared(
        None,
        _count(
            "--max-connections",
            "Open connections per transport (gRPC, HTTP); past it a new HTTP connection gets `503` and a gRPC one "
            "is closed. At start the server raises its soft open-files limit (`RLIMIT_NOFILE`) to the hard one, "
            "logs it, and keeps each transport below half of what is left after a reserve.",
            shown_default="10000, within the open-files limit",
        ),
    )
    # Connections one client address may hold per transport (None: half of the transport's connection cap).
    max_connections_per_address: int | None = declared(
        None,
        _count(
            "--max-connections-per-address",
            "Open connections one client IP address may hold per transport; past it its new HTTP connections get "
            "`503` and gRPC ones are closed. Behind a proxy or NAT that hides client addresses, set it to "
            "`--max-connections`.",
            shown_default="half of `--max-connections`",
        ),
    )
    # gRPC streams one connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS).
    max_streams_per_connection: int = declared(
        10_000,
        _count(
            "--max-streams-per-connection",
            "gRPC calls, subscriptions included, one connection may have open at once (HTTP/2 "
            "`SETTINGS_MAX_CONCURRENT_STREAMS`); gRPC clients queue calls beyond it, and a connection that opens "
            "more is closed.",
        ),
    )
    http_idle_timeout: int = declared(
        5,
        Option(
            "--http-idle-timeout",
            "Seconds an HTTP connection may stay open without a request (new, or between requests).",
            "integer",
            minimum=1,
        ),
    )
    # Seconds a gRPC connection may stay open without a call before it is told to go away.
    grpc_idle_timeout: float = declared(
        300.0,
        _interval(
            "--grpc-idle-timeout",
            "Seconds a gRPC connection may stay open without a call (keepalive pings do not count) before it is "
            "told to go away (`GOAWAY`) and closed; clients open a new connection for their next call.",
        ),
    )
    request_timeout: float = declared(
        10.0,
        _interval(
            "--request-timeout",
            "Seconds a connection has to send a whole HTTP request (head and body), or a gRPC connection its whole "
            "HTTP/2 preface and first settings; a slower one is closed. With `--grpc-transport h2` it is also the "
            "time a gRPC request has, from its headers, to arrive whole (else `DEADLINE_EXCEEDED`).",
        ),
    )
    allowed_hosts: tuple[str, ...] = declared(
        (),
        Option(
            "--allowed-hosts",
            "Host names the HTTP API answers for (`*.example.com` and `*` allowed; repeatable); another `Host` "
            "header gets `421`, which stops DNS rebinding.",
            "names",
            metavar="NAME",
            shown_default="`localhost`, `*.localhost`, `127.0.0.1`, `::1` when listening on loopback; else any",
        ),
    )
    cors_origins: tuple[str, ...] = declared(
        (),
        Option(
            "--cors-origins",
            "Web origins (`https://app.example.com`, or `*`) allowed to use the HTTP API from a browser; a "
            "browser's state-changing request from any other origin gets `403` "
            "([docs/http.md](docs/http.md#host-names-and-web-origins)).",
            "names",
            metavar="ORIGIN",
        ),
    )
    # Webhook deliveries: the deadline of one POST, the attempts per message (0: retry for up to an hour), and
    # whether endpoints may be private addresses (None: only when the server listens on loopback).
    webhook_timeout: float = declared(
        5.0,
        Option(
            "--webhook-timeout",
            "Deadline of one webhook POST; slower counts as a failure and is retried "
            "([docs/webhooks.md](docs/webhooks.md)).",
            "seconds",
            above=0,
        ),
    )
    webhook_max_attempts: int = declared(
        0,
        Option(
            "--webhook-max-attempts",
            "Attempts per message before a webhook gives it up; 0 = retry with backoff for up to an hour.",
            "integer",
            metavar="N",
            minimum=0,
        ),
    )
    webhook_allow_private: bool | None = declared(
        None,
        Option(
            "--webhook-allow-private",
            "Whether webhooks may POST to loopback, private and link-local addresses.",
            "flag",
            off_flag="--webhook-deny-private",
            shown_default="allowed only on loopback",
        ),
    )
    # Test hooks, hidden from --help and the docs; tests set them through TIDINGS_TEST_* variables.
    test_follow_delay: float = declared(0.0, Option("--test-follow-delay", "Test hook.", "seconds", hidden=True))
    test_webhook_lease_seconds: float = declared(
        10.0, Option("--test-webhook-lease-seconds", "Test hook.", "seconds", hidden=True)
    )
    test_h2_keepalive: float | None = declared(
        None, Option("--test-h2-keepalive", "Test hook.", "seconds", hidden=True)
    )
