"""`AuthClient(Async).generate_disposable_token` and ``tidings token create`` against ``--require-auth`` servers:
minted tokens allow and deny what their scopes say, with our clients and with the official SDK."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from momento import CredentialProvider, TopicConfigurations
from momento import TopicClientAsync as MomentoTopicClientAsync
from momento.errors import MomentoErrorCode
from momento.responses import TopicPublish as MomentoTopicPublish
from momento.responses import TopicSubscribe as MomentoTopicSubscribe

from tests.integration._server import ServerProcess
from tests.integration.conftest import SDK_TIMEOUT
from tests.integration.sdk.conftest import TIMEOUT
from tidings import (
    ALL_CACHES,
    AuthClient,
    AuthClientAsync,
    DisposableTokenScope,
    ErrorCode,
    GenerateDisposableToken,
    TopicClient,
    TopicClientAsync,
    TopicNamePrefix,
    TopicPublish,
    TopicScope,
    TopicSubscribe,
    TopicSubscriptionItem,
)

StartServer = Callable[..., ServerProcess]
Probe = tuple[str, str]
# Where each scope is tried: caches "c" and "d", a few topics.
PROBES: tuple[Probe, ...] = (("c", "t"), ("c", "u"), ("c", "events-1"), ("d", "t"), ("d", "events-2"))


def admin_key(server: ServerProcess) -> str:
    return (server.data_dir / "admin.key").read_text().strip()


def auth_server(start_server: StartServer) -> ServerProcess:
    return start_server("--require-auth", "--create-cache", "c", "--create-cache", "d")


async def mint(
    server: ServerProcess,
    scope: TopicScope | DisposableTokenScope,
    expires_in: int | timedelta = 300,
    token_id: str | None = None,
) -> GenerateDisposableToken.Success:
    async with AuthClientAsync(server.endpoint, admin_key(server), timeout=TIMEOUT) as auth:
        minted = await auth.generate_disposable_token(scope, expires_in, token_id)
    assert isinstance(minted, GenerateDisposableToken.Success), minted
    return minted


async def allowed_with_tidings(server: ServerProcess, token: str) -> tuple[set[Probe], set[Probe]]:
    """Where our client may publish and subscribe with ``token``; every refusal must be PERMISSION_DENIED."""
    publishes, subscribes = set(), set()
    async with TopicClientAsync(server.endpoint, token, timeout=TIMEOUT) as client:
        for cache, topic in PROBES:
            published = await client.publish(cache, topic, "v")
            if isinstance(published, TopicPublish.Error):
                assert published.error_code is ErrorCode.PERMISSION_DENIED, published
            else:
                publishes.add((cache, topic))
            subscription = await client.subscribe(cache, topic)
            if isinstance(subscription, TopicSubscribe.Error):
                assert subscription.error_code is ErrorCode.PERMISSION_DENIED, subscription
            else:
                subscription.unsubscribe()
                subscribes.add((cache, topic))
    return publishes, subscribes


async def allowed_with_momento(server: ServerProcess, token: str) -> tuple[set[Probe], set[Probe]]:
    """The same with the official SDK, given ``token`` the way its users pass one for a local server."""
    publishes, subscribes = set(), set()
    credentials = CredentialProvider(token, server.host, server.host, server.host, server.port)
    config = TopicConfigurations.Default.v1().with_client_timeout(SDK_TIMEOUT)
    async with MomentoTopicClientAsync(config, credentials) as client:
        for cache, topic in PROBES:
            published = await client.publish(cache, topic, "v")
            if isinstance(published, MomentoTopicPublish.Error):
                assert published.error_code is MomentoErrorCode.PERMISSION_ERROR, published
            else:
                publishes.add((cache, topic))
            subscription = await client.subscribe(cache, topic)
            if isinstance(subscription, MomentoTopicSubscribe.Error):
                assert subscription.error_code is MomentoErrorCode.PERMISSION_ERROR, subscription
            else:
                assert isinstance(subscription, MomentoTopicSubscribe.SubscriptionAsync), subscription
                subscription.unsubscribe()
                subscribes.add((cache, topic))
    return publishes, subscribes


@pytest.mark.parametrize(
    ("scope", "publishes", "subscribes"),
    [
        pytest.param(
            TopicScope.publish_subscribe("c", "t"), {("c", "t")}, {("c", "t")}, id="publish_subscribe-one-topic"
        ),
        pytest.param(
            TopicScope.subscribe_only("c"),
            set(),
            {("c", "t"), ("c", "u"), ("c", "events-1")},
            id="subscribe_only-cache",
        ),
        pytest.param(
            TopicScope.publish_only(ALL_CACHES, TopicNamePrefix("events-")),
            {("c", "events-1"), ("d", "events-2")},
            set(),
            id="publish_only-prefix-all-caches",
        ),
        pytest.param(
            TopicScope.subscribe_only("c", "u") | TopicScope.publish_only("d", "t"),
            {("d", "t")},
            {("c", "u")},
            id="combined",
        ),
    ],
)
async def test_auth_client_tokens_allow_exactly_their_scope(
    start_server: StartServer,
    scope: TopicScope | DisposableTokenScope,
    publishes: set[Probe],
    subscribes: set[Probe],
) -> None:
    server = auth_server(start_server)
    minted = await mint(server, scope)

    with_tidings = await allowed_with_tidings(server, minted.token)
    with_momento = await allowed_with_momento(server, minted.token)
    with_momento_envelope = await allowed_with_momento(server, minted.momento_token)

    assert with_tidings == (publishes, subscribes)
    assert with_momento == (publishes, subscribes)
    assert with_momento_envelope == (publishes, subscribes)


async def test_auth_client_token_id_arrives_with_what_the_token_publishes(start_server: StartServer) -> None:
    server = auth_server(start_server)
    before = datetime.now(UTC).replace(microsecond=0)
    minted = await mint(server, TopicScope.publish_only("c", "orders"), timedelta(minutes=5), "checkout-service")

    async with (
        TopicClientAsync(server.endpoint, admin_key(server), timeout=TIMEOUT) as reader,
        TopicClientAsync(server.endpoint, minted.momento_token, timeout=TIMEOUT) as writer,
    ):
        subscription = await reader.subscribe("c", "orders")
        assert isinstance(subscription, TopicSubscribe.SubscriptionAsync), subscription
        published = await writer.publish("c", "orders", "paid")
        item = await asyncio.wait_for(subscription.__anext__(), TIMEOUT)

    assert published == TopicPublish.Success()
    assert isinstance(item, TopicSubscriptionItem.Text)
    assert (item.value, item.token_id) == ("paid", "checkout-service")
    assert minted.token_id == "checkout-service"
    assert minted.endpoint == server.endpoint
    # At least the lifetime asked for; rounded up to a whole second at most.
    assert before + timedelta(minutes=5) <= minted.expires_at <= datetime.now(UTC) + timedelta(minutes=5, seconds=1)


async def test_auth_client_refuses_callers_that_are_not_super_users(start_server: StartServer) -> None:
    server = auth_server(start_server)
    everything = TopicScope.publish_subscribe(ALL_CACHES)
    restricted = await mint(server, everything)

    async with AuthClientAsync(server.endpoint, restricted.token, timeout=TIMEOUT) as auth:
        denied = await auth.generate_disposable_token(everything, 60)
    async with AuthClientAsync(server.endpoint, timeout=TIMEOUT) as anonymous:
        unauthenticated = await anonymous.generate_disposable_token(everything, 60)

    assert isinstance(denied, GenerateDisposableToken.Error)
    assert denied.error_code is ErrorCode.PERMISSION_DENIED
    assert isinstance(unauthenticated, GenerateDisposableToken.Error)
    assert unauthenticated.error_code is ErrorCode.AUTHENTICATION


@pytest.mark.parametrize(
    ("scope", "expires_in", "token_id", "message"),
    [
        pytest.param(TopicScope.publish_only("c"), 0, None, "1 second to 1 hour", id="zero-seconds"),
        pytest.param(TopicScope.publish_only("c"), timedelta(hours=2), None, "1 second to 1 hour", id="two-hours"),
        pytest.param(TopicScope.publish_only("c"), 60, "x" * 65, "at most 64 characters", id="long-token-id"),
        pytest.param(DisposableTokenScope(), 60, None, "at least one TopicScope", id="empty-scope"),
        pytest.param("readwrite:c", 60, None, "scope must be a TopicScope", id="scope-string"),
    ],
)
async def test_auth_client_bad_arguments_are_refused_without_a_call(
    scope: object, expires_in: int | timedelta, token_id: str | None, message: str
) -> None:
    # Nothing listens on port 1: a call that reached the network would be UNAVAILABLE, not INVALID_ARGUMENT.
    async with AuthClientAsync("127.0.0.1:1", timeout=TIMEOUT) as auth:
        refused = await auth.generate_disposable_token(scope, expires_in, token_id)  # type: ignore[arg-type]

    assert isinstance(refused, GenerateDisposableToken.Error)
    assert refused.error_code is ErrorCode.INVALID_ARGUMENT
    assert message in refused.message


def test_auth_client_blocking_client_mints_usable_tokens(start_server: StartServer) -> None:
    server = auth_server(start_server)

    with AuthClient(server.endpoint, admin_key(server), timeout=TIMEOUT) as auth:
        minted = auth.generate_disposable_token([TopicScope.publish_subscribe("c", "t")], 60, "blocking")
    assert isinstance(minted, GenerateDisposableToken.Success), minted
    with TopicClient(server.endpoint, minted.token, timeout=TIMEOUT) as client:
        subscription = client.subscribe("c", "t")
        assert isinstance(subscription, TopicSubscribe.Subscription), subscription
        published = client.publish("c", "t", "hello")
        item = next(subscription)
        denied = client.publish("c", "u", "hello")

    assert published == TopicPublish.Success()
    assert isinstance(item, TopicSubscriptionItem.Text)
    assert (item.value, item.token_id) == ("hello", "blocking")
    assert isinstance(denied, TopicPublish.Error)
    assert denied.error_code is ErrorCode.PERMISSION_DENIED
    assert repr(auth) == f"AuthClient(endpoint={server.endpoint!r}, state='closed')"


def tidings(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tidings", *args], capture_output=True, text=True, timeout=60, check=False
    )


async def test_auth_client_cli_token_create_mints_a_usable_token(start_server: StartServer) -> None:
    server = auth_server(start_server)
    connection = ("--endpoint", server.endpoint, "--api-key", admin_key(server))

    as_json = tidings("token", "create", "writeonly:c:events-*", "--token-id", "cli", "--json", *connection)
    plain = tidings("token", "create", "readonly:c", "--expires", "30s", *connection)
    not_super_user = tidings(
        "token", "create", "readonly:c", "--endpoint", server.endpoint, "--api-key", plain.stdout.strip()
    )

    assert as_json.returncode == 0, as_json.stderr
    printed = json.loads(as_json.stdout)
    assert set(printed) == {"token", "momento_token", "endpoint", "expires_at", "token_id"}
    assert (printed["endpoint"], printed["token_id"]) == (server.endpoint, "cli")
    assert time.time() + 14 * 60 < printed["expires_at"] <= time.time() + 15 * 60 + 1
    assert plain.returncode == 0, plain.stderr
    reader_token = plain.stdout.strip()
    assert not_super_user.returncode == 1
    assert "Error: token create failed: PERMISSION_DENIED" in not_super_user.stderr
    assert await allowed_with_tidings(server, printed["token"]) == ({("c", "events-1")}, set())
    assert await allowed_with_tidings(server, reader_token) == (set(), {("c", "t"), ("c", "u"), ("c", "events-1")})
    async with (
        TopicClientAsync(server.endpoint, reader_token, timeout=TIMEOUT) as reader,
        TopicClientAsync(server.endpoint, printed["momento_token"], timeout=TIMEOUT) as writer,
    ):
        subscription = await reader.subscribe("c", "events-9")
        assert isinstance(subscription, TopicSubscribe.SubscriptionAsync), subscription
        assert await writer.publish("c", "events-9", "from the cli") == TopicPublish.Success()
        item = await asyncio.wait_for(subscription.__anext__(), TIMEOUT)
    assert isinstance(item, TopicSubscriptionItem.Text)
    assert (item.value, item.token_id) == ("from the cli", "cli")


@pytest.mark.parametrize(
    ("arguments", "status", "message"),
    [
        pytest.param(("admin:c",), 2, "is not a scope", id="bad-scope"),
        pytest.param(("readwrite:c", "--expires", "2h"), 1, "INVALID_ARGUMENT: expires_in", id="over-an-hour"),
        pytest.param(("readwrite:c", "--expires", "soon"), 2, "is not a duration", id="bad-duration"),
        pytest.param(("readwrite:c", "--token-id", "x" * 65), 1, "at most 64 characters", id="long-token-id"),
        pytest.param((), 2, "Missing argument 'SCOPE...'", id="no-scope"),
    ],
)
def test_auth_client_cli_token_create_refuses_bad_arguments_without_a_call(
    arguments: tuple[str, ...], status: int, message: str
) -> None:
    result = tidings("token", "create", *arguments, "--endpoint", "127.0.0.1:1")

    assert result.returncode == status, result.stderr
    assert message in result.stderr
    assert result.stdout == ""
