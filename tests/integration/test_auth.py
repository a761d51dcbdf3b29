"""Tokens and permissions end to end (PROTOCOL.md *Tokens and permissions*), with the official SDK and raw stubs."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import httpx
import pytest
from momento import AuthClientAsync, CredentialProvider, TopicClientAsync, TopicConfigurations
from momento.auth.access_control.disposable_token_scope import DisposableTokenProps
from momento.auth.access_control.disposable_token_scopes import DisposableTokenScopes
from momento.config.auth_configurations import AuthConfigurations
from momento.errors import MomentoErrorCode
from momento.responses import GenerateDisposableToken, TopicPublish, TopicSubscribe, TopicSubscriptionItem
from momento.utilities import ExpiresIn
from momento_wire_types import (
    cachepubsub_pb2,
    cachepubsub_pb2_grpc,
    controlclient_pb2,
    controlclient_pb2_grpc,
    permissionmessages_pb2,
    token_pb2,
    token_pb2_grpc,
)

from tests.integration._server import ServerProcess
from tests.integration._tls import self_signed_certificate
from tests.integration._wire import read_items
from tidings.server.auth import TokenSigner
from tidings.server.core import TopicGrant, TopicPermission

StartServer = Callable[..., ServerProcess]
Perm = permissionmessages_pb2.PermissionsType
SDK_TIMEOUT = timedelta(seconds=120)


def admin_key(server: ServerProcess) -> str:
    return (server.data_dir / "admin.key").read_text().strip()


def creds(server: ServerProcess, token: str) -> CredentialProvider:
    """An official SDK credential provider sending ``token`` over plaintext to the local server."""
    return CredentialProvider(token, server.host, server.host, server.host, server.port)


def meta(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", token),)


def topic_permissions(
    role: int, cache: str | None = None, topic: str | None = None, prefix: str | None = None
) -> permissionmessages_pb2.Permissions:
    kwargs: dict[str, Any] = {"role": role}
    kwargs["cache_selector" if cache else "all_caches"] = Perm.CacheSelector(cache_name=cache) if cache else Perm.All()
    if topic is not None:
        kwargs["topic_selector"] = Perm.TopicSelector(topic_name=topic)
    elif prefix is not None:
        kwargs["topic_selector"] = Perm.TopicSelector(topic_name_prefix=prefix)
    else:
        kwargs["all_topics"] = Perm.All()
    return permissionmessages_pb2.Permissions(
        explicit=permissionmessages_pb2.ExplicitPermissions(
            permissions=[Perm(topic_permissions=Perm.TopicPermissions(**kwargs))]
        )
    )


class Wire:
    """Raw stubs on one channel to an auth-enabled server."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.pubsub = cachepubsub_pb2_grpc.PubsubStub(channel)
        self.control = controlclient_pb2_grpc.ScsControlStub(channel)
        self.token = token_pb2_grpc.TokenStub(channel)

    async def mint(
        self,
        caller: str,
        permissions: permissionmessages_pb2.Permissions,
        seconds: int = 300,
        token_id: str = "",
        in_request: bool = False,
    ) -> token_pb2._GenerateDisposableTokenResponse:
        request = token_pb2._GenerateDisposableTokenRequest(
            expires=token_pb2._GenerateDisposableTokenRequest.Expires(valid_for_seconds=seconds),
            permissions=permissions,
            token_id=token_id,
            auth_token=caller if in_request else "",
        )
        response: token_pb2._GenerateDisposableTokenResponse = await self.token.GenerateDisposableToken(
            request, metadata=() if in_request else meta(caller)
        )
        return response

    async def publish(self, token: str | None, cache: str, topic: str, value: str = "v") -> None:
        request = cachepubsub_pb2._PublishRequest(
            cache_name=cache, topic=topic, value=cachepubsub_pb2._TopicValue(text=value)
        )
        await self.pubsub.Publish(request, metadata=meta(token) if token is not None else None, timeout=10)

    def subscribe(self, token: str | None, cache: str, topic: str) -> Any:
        request = cachepubsub_pb2._SubscriptionRequest(cache_name=cache, topic=topic)
        return self.pubsub.Subscribe(request, metadata=meta(token) if token is not None else None)

    async def subscribed(self, token: str | None, cache: str, topic: str) -> Any:
        call = self.subscribe(token, cache, topic)
        first = await asyncio.wait_for(call.read(), 10)
        assert first.WhichOneof("kind") == "heartbeat", first
        return call

    async def create_cache(self, token: str, name: str) -> None:
        await self.control.CreateCache(controlclient_pb2._CreateCacheRequest(cache_name=name), metadata=meta(token))


async def code_of(awaitable: Any) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await awaitable
    return error.value.code()


async def stream_code(call: Any) -> grpc.StatusCode:
    try:
        while True:
            message = await asyncio.wait_for(call.read(), 10)
            assert message is not grpc.aio.EOF  # type: ignore[attr-defined]  # missing from grpc-stubs
    except grpc.aio.AioRpcError as error:
        return error.code()


@pytest.fixture
def auth_server(start_server: StartServer) -> ServerProcess:
    """A server where every call needs a token, with a cache "c"."""
    return start_server("--require-auth", "--create-cache", "c")


@pytest.fixture
async def wire(auth_server: ServerProcess) -> AsyncIterator[Wire]:
    async with grpc.aio.insecure_channel(auth_server.endpoint) as channel:
        yield Wire(channel)


def test_secret_and_admin_key_files_are_private_and_key_is_not_logged(auth_server: ServerProcess) -> None:
    for name in ("secret.key", "admin.key"):
        mode = stat.S_IMODE((auth_server.data_dir / name).stat().st_mode)
        assert mode == 0o600, (name, oct(mode))
    log = "".join(auth_server.log)
    assert str(auth_server.data_dir / "admin.key") in log
    assert admin_key(auth_server) not in log


async def test_require_auth_refuses_anonymous_calls(auth_server: ServerProcess, wire: Wire) -> None:
    assert await code_of(wire.publish(None, "c", "t")) == grpc.StatusCode.UNAUTHENTICATED
    assert await code_of(wire.publish("", "c", "t")) == grpc.StatusCode.UNAUTHENTICATED
    assert await stream_code(wire.subscribe(None, "c", "t")) == grpc.StatusCode.UNAUTHENTICATED
    config = TopicConfigurations.Default.v1().with_client_timeout(SDK_TIMEOUT)
    async with TopicClientAsync(
        config, CredentialProvider.for_momento_local(auth_server.host, auth_server.port)
    ) as sdk:
        response = await sdk.publish("c", "t", "v")
    assert isinstance(response, TopicPublish.Error)
    assert response.error_code == MomentoErrorCode.AUTHENTICATION_ERROR


async def test_admin_key_is_super_user(auth_server: ServerProcess, wire: Wire) -> None:
    admin = admin_key(auth_server)

    await wire.create_cache(admin, "made-by-admin")
    await wire.publish(admin, "made-by-admin", "t")


async def test_official_sdk_mints_token_with_token_id_that_arrives_as_publisher_id(
    auth_server: ServerProcess, wire: Wire
) -> None:
    async with AuthClientAsync(AuthConfigurations.Laptop.v1(), creds(auth_server, admin_key(auth_server))) as auth:
        minted = await auth.generate_disposable_token(
            DisposableTokenScopes.topic_publish_subscribe("c", "orders"),
            ExpiresIn.minutes(5),
            DisposableTokenProps(token_id="checkout-service"),
        )
    assert isinstance(minted, GenerateDisposableToken.Success), minted
    envelope = json.loads(base64.b64decode(minted.auth_token))
    assert envelope["endpoint"] == auth_server.endpoint
    assert time.time() + 240 < minted.expires_at.epoch() <= time.time() + 301  # rounded up to a whole second

    # The SDK hands users the base64 envelope; the server accepts it as it is.
    config = TopicConfigurations.Default.v1().with_client_timeout(SDK_TIMEOUT)
    async with TopicClientAsync(config, creds(auth_server, minted.auth_token)) as sdk:
        subscription = await sdk.subscribe("c", "orders")
        assert isinstance(subscription, TopicSubscribe.SubscriptionAsync), subscription
        call = await wire.subscribed(envelope["api_key"], "c", "orders")
        published = await sdk.publish("c", "orders", "paid")
        item = await asyncio.wait_for(subscription.__anext__(), 10)
        subscription.unsubscribe()
    [raw] = await read_items(call, 1)
    call.cancel()

    assert isinstance(published, TopicPublish.Success), published
    assert isinstance(item, TopicSubscriptionItem.Text)
    assert item.value == "paid"
    assert raw.publisher_id == "checkout-service"


async def test_anonymous_and_super_user_publishes_carry_no_publisher_id(server: ServerProcess, cache: str) -> None:
    async with grpc.aio.insecure_channel(server.endpoint) as channel:
        wire = Wire(channel)
        call = await wire.subscribed(None, cache, "t")
        await wire.publish(None, cache, "t")
        [item] = await read_items(call, 1)
        call.cancel()

    assert item.publisher_id == ""


@pytest.mark.parametrize(
    ("scope", "may_publish", "may_subscribe"),
    [
        (DisposableTokenScopes.topic_publish_subscribe, True, True),
        (DisposableTokenScopes.topic_subscribe_only, False, True),
        (DisposableTokenScopes.topic_publish_only, True, False),
    ],
    ids=["read-write", "read-only", "write-only"],
)
async def test_roles_allow_and_deny_as_protocol_says(
    auth_server: ServerProcess, wire: Wire, scope: Any, may_publish: bool, may_subscribe: bool
) -> None:
    async with AuthClientAsync(AuthConfigurations.Laptop.v1(), creds(auth_server, admin_key(auth_server))) as auth:
        minted = await auth.generate_disposable_token(scope("c", "t"), ExpiresIn.minutes(5))
    assert isinstance(minted, GenerateDisposableToken.Success), minted
    token = minted.auth_token

    if may_publish:
        await wire.publish(token, "c", "t")
    else:
        assert await code_of(wire.publish(token, "c", "t")) == grpc.StatusCode.PERMISSION_DENIED
    if may_subscribe:
        (await wire.subscribed(token, "c", "t")).cancel()
    else:
        assert await stream_code(wire.subscribe(token, "c", "t")) == grpc.StatusCode.PERMISSION_DENIED


async def test_scope_limits_cache_topic_and_prefix(auth_server: ServerProcess, wire: Wire) -> None:
    admin = admin_key(auth_server)
    await wire.create_cache(admin, "other")
    one_topic = (await wire.mint(admin, topic_permissions(permissionmessages_pb2.TopicReadWrite, "c", "t"))).api_key
    prefixed = (
        await wire.mint(admin, topic_permissions(permissionmessages_pb2.TopicReadWrite, "c", prefix="events-"))
    ).api_key

    await wire.publish(one_topic, "c", "t")
    await wire.publish(prefixed, "c", "events-1")
    denied = [
        wire.publish(one_topic, "other", "t"),  # another cache
        wire.publish(one_topic, "c", "u"),  # another topic
        wire.publish(prefixed, "c", "other-1"),  # outside the prefix
        wire.publish(prefixed, "other", "events-1"),
        wire.publish(one_topic, "missing-cache", "t"),  # denied before existence is revealed
    ]
    assert [await code_of(call) for call in denied] == [grpc.StatusCode.PERMISSION_DENIED] * len(denied)


async def test_disposable_tokens_cannot_manage_caches_or_mint(auth_server: ServerProcess, wire: Wire) -> None:
    admin = admin_key(auth_server)
    token = (await wire.mint(admin, topic_permissions(permissionmessages_pb2.TopicReadWrite))).api_key

    assert await code_of(wire.create_cache(token, "nope")) == grpc.StatusCode.PERMISSION_DENIED
    assert (
        await code_of(wire.mint(token, topic_permissions(permissionmessages_pb2.TopicReadWrite)))
        == grpc.StatusCode.PERMISSION_DENIED
    )


async def test_mint_accepts_caller_key_in_request_field_like_the_node_sdk(
    auth_server: ServerProcess, wire: Wire
) -> None:
    minted = await wire.mint(
        admin_key(auth_server), topic_permissions(permissionmessages_pb2.TopicReadWrite), in_request=True
    )

    await wire.publish(minted.api_key, "c", "t")


@pytest.mark.parametrize(
    ("permissions", "seconds", "token_id"),
    [
        (topic_permissions(permissionmessages_pb2.TopicReadWrite), 3601, ""),
        (topic_permissions(permissionmessages_pb2.TopicReadWrite), 0, ""),
        (topic_permissions(permissionmessages_pb2.TopicReadWrite), 60, "x" * 65),
        (permissionmessages_pb2.Permissions(super_user=permissionmessages_pb2.SuperUser), 60, ""),
        (permissionmessages_pb2.Permissions(), 60, ""),
    ],
    ids=["over-an-hour", "zero-seconds", "long-token-id", "super-user", "no-permissions"],
)
async def test_bad_token_requests_are_invalid_argument(
    auth_server: ServerProcess, wire: Wire, permissions: Any, seconds: int, token_id: str
) -> None:
    code = await code_of(wire.mint(admin_key(auth_server), permissions, seconds, token_id))

    assert code == grpc.StatusCode.INVALID_ARGUMENT


def _other_tokens(server: ServerProcess) -> dict[str, str]:
    secret = (server.data_dir / "secret.key").read_text().strip().encode()
    grant = (TopicGrant(TopicPermission.READ_WRITE),)
    good, _ = TokenSigner(secret).mint(grant, 300)
    expired, _ = TokenSigner(secret, wall_clock=lambda: time.time() - 3600).mint(grant, 60)
    foreign, _ = TokenSigner(os.urandom(32)).mint(grant, 300)
    header, payload, signature = good.split(".")
    return {
        "expired": expired,
        "tampered-signature": f"{header}.{payload}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}",
        "tampered-payload": f"{header}.{payload[:-2]}xx.{signature}",
        "other-server": foreign,
        "garbage": "not a token at all",
        "unknown-api-key": "tdk_000000000000_" + "a" * 43,
        # Over the 8 KiB a credential may have, within the 16 KiB of headers a request may have (a larger header
        # list is RESOURCE_EXHAUSTED: test_h2_hostile_clients.py).
        "over-long": "x" * (12 * 1024),
        "envelope-of-garbage": base64.b64encode(json.dumps({"endpoint": "e", "api_key": "junk"}).encode()).decode(),
    }


async def test_bad_tokens_are_unauthenticated_and_server_keeps_serving(auth_server: ServerProcess, wire: Wire) -> None:
    tokens = _other_tokens(auth_server)

    codes = {name: await code_of(wire.publish(token, "c", "t")) for name, token in tokens.items()}
    stream_codes = {name: await stream_code(wire.subscribe(token, "c", "t")) for name, token in tokens.items()}

    assert codes == dict.fromkeys(tokens, grpc.StatusCode.UNAUTHENTICATED)
    assert stream_codes == dict.fromkeys(tokens, grpc.StatusCode.UNAUTHENTICATED)
    await wire.publish(admin_key(auth_server), "c", "t")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tidings", *args], capture_output=True, text=True, timeout=60)


async def test_api_key_from_cli_works_and_revocation_ends_its_streams(auth_server: ServerProcess, wire: Wire) -> None:
    data_dir = str(auth_server.data_dir)
    created = _cli("key", "create", "readwrite:c", "--description", "ci", "--data-dir", data_dir)
    assert created.returncode == 0, created.stderr
    api_key = created.stdout.strip()
    [listed] = [json.loads(line) for line in _cli("key", "list", "--json", "--data-dir", data_dir).stdout.splitlines()
                if json.loads(line)["description"] == "ci"]  # fmt: skip
    assert api_key not in _cli("key", "list", "--data-dir", data_dir).stdout
    # The running server picks the new key up within its refresh interval.
    codes = []
    for _ in range(100):
        try:
            await wire.publish(api_key, "c", "t")
            break
        except grpc.aio.AioRpcError as error:
            codes.append(error.code())
            await asyncio.sleep(0.05)
    assert set(codes) <= {grpc.StatusCode.UNAUTHENTICATED}
    call = await wire.subscribed(api_key, "c", "t")
    other = await wire.subscribed(admin_key(auth_server), "c", "t")

    revoked_at = time.monotonic()
    assert _cli("key", "revoke", listed["id"], "--data-dir", data_dir).returncode == 0
    ended = await stream_code(call)
    elapsed = time.monotonic() - revoked_at

    assert ended == grpc.StatusCode.UNAUTHENTICATED
    assert elapsed < 5  # one refresh interval (0.5 s) plus the CLI's start-up
    assert await code_of(wire.publish(api_key, "c", "t")) == grpc.StatusCode.UNAUTHENTICATED
    await wire.publish(admin_key(auth_server), "c", "t")
    [still_there] = await read_items(other, 1)  # other subscriptions go on
    assert still_there.topic_sequence_number >= 1
    other.cancel()


def test_non_loopback_host_without_auth_refuses_to_start(tmp_path: Path) -> None:
    result = _cli("server", "--host", "0.0.0.0", "--port", "0", "--data-dir", str(tmp_path))

    assert result.returncode == 2
    assert "--require-auth" in result.stderr
    assert "--allow-anonymous" in result.stderr


def test_require_auth_and_allow_anonymous_contradict(tmp_path: Path) -> None:
    result = _cli("server", "--require-auth", "--allow-anonymous", "--data-dir", str(tmp_path))

    assert result.returncode == 2
    assert "contradict" in result.stderr


async def test_tls_serves_grpc_and_refuses_plaintext(start_server: StartServer, tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path)
    server = start_server("--tls-cert", str(cert), "--tls-key", str(key), "--create-cache", "c")
    credentials = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())

    async with grpc.aio.secure_channel(server.endpoint, credentials) as channel:
        wire = Wire(channel)
        call = await wire.subscribed(None, "c", "t")
        await wire.publish(None, "c", "t", "secret")
        [item] = await read_items(call, 1)
        call.cancel()
    async with grpc.aio.insecure_channel(server.endpoint) as plaintext:
        plain_code = await code_of(Wire(plaintext).publish(None, "c", "t"))

    assert item.value.text == "secret"
    assert plain_code == grpc.StatusCode.UNAVAILABLE
    assert any("listening on grpcs://" in line for line in server.log)


async def _until(epoch: float) -> None:
    """Wait until the wall clock passes ``epoch`` (what these tests measure is time itself)."""
    await asyncio.sleep(max(0.0, epoch - time.time()) + 0.005)


async def _accepted(wire: Wire, credential: str) -> None:
    """Wait (up to 10 s) until the server accepts a key the CLI just created."""
    codes = []
    for _ in range(200):
        try:
            await wire.publish(credential, "c", "t")
            break
        except grpc.aio.AioRpcError as error:
            codes.append(error.code())
            await asyncio.sleep(0.05)
    assert set(codes) <= {grpc.StatusCode.UNAUTHENTICATED}
    assert len(codes) < 200, "the server never picked up the new key"


async def _http_publish(http: httpx.AsyncClient, token: str, topic: str = "t") -> httpx.Response:
    headers = {"Authorization": token, "Content-Type": "text/plain"}
    return await http.post(f"/topics/c/{topic}", content="via http", headers=headers, timeout=10)


async def test_token_lasts_its_whole_lifetime_and_stops_at_its_valid_until(
    auth_server: ServerProcess, wire: Wire
) -> None:
    # Arrange: mint late in a second, where truncating to whole seconds would cut most of a second off.
    await _until(int(time.time()) + 1.7)
    asked_at = time.time()
    minted = await wire.mint(admin_key(auth_server), topic_permissions(permissionmessages_pb2.TopicReadWrite), 2)
    call = await wire.subscribed(minted.api_key, "c", "t")

    # Act / Assert: it works until near the end of its whole lifetime (an int() cut would have ended it)...
    assert minted.valid_until >= asked_at + 2
    await _until(asked_at + 2 - 0.5)
    await wire.publish(minted.api_key, "c", "t")
    [item] = await read_items(call, 1)

    # ...and not from the valid_until it was minted with: its stream ends within the refresh interval (0.5 s).
    await _until(minted.valid_until)
    refused = await code_of(wire.publish(minted.api_key, "c", "t"))
    ended = await stream_code(call)
    ended_after = time.time() - minted.valid_until

    assert item.publisher_id == ""
    assert refused == grpc.StatusCode.UNAUTHENTICATED
    assert ended == grpc.StatusCode.UNAUTHENTICATED
    assert ended_after < 1.5


async def test_revoking_a_key_revokes_the_tokens_it_minted_and_ends_their_streams(
    auth_server: ServerProcess, wire: Wire
) -> None:
    # Arrange: a super-user key from the CLI mints a token; the admin key mints another.
    data_dir = str(auth_server.data_dir)
    created = _cli("key", "create", "--super-user", "--description", "minter", "--data-dir", data_dir)
    assert created.returncode == 0, created.stderr
    minter = created.stdout.strip()
    await _accepted(wire, minter)
    permissions = topic_permissions(permissionmessages_pb2.TopicReadWrite, "c")
    token = (await wire.mint(minter, permissions)).api_key
    other = (await wire.mint(admin_key(auth_server), permissions)).api_key
    # A topic of its own: a subscription without a position starts with a topic's newest message.
    call = await wire.subscribed(token, "c", "minted")
    other_call = await wire.subscribed(other, "c", "minted")
    async with httpx.AsyncClient(base_url=auth_server.http_url) as http:
        http_before = await _http_publish(http, token, "minted")

    # Act
    revoked = _cli("key", "revoke", minter.split("_")[1], "--data-dir", data_dir)
    ended = await stream_code(call)

    # Assert
    assert revoked.returncode == 0, revoked.stderr
    assert "with the tokens it minted" in revoked.stderr
    assert ended == grpc.StatusCode.UNAUTHENTICATED
    assert await code_of(wire.publish(token, "c", "minted")) == grpc.StatusCode.UNAUTHENTICATED
    async with httpx.AsyncClient(base_url=auth_server.http_url) as http:
        http_after = await _http_publish(http, token, "minted")
    assert (http_before.status_code, http_after.status_code) == (204, 401)
    await wire.publish(other, "c", "minted", "still here")
    values = [item.value.text for item in await read_items(other_call, 2)]
    assert values == ["via http", "still here"]
    other_call.cancel()


async def test_token_revoke_refuses_the_tokens_of_an_id_minted_until_then(
    auth_server: ServerProcess, wire: Wire
) -> None:
    # Arrange
    admin = admin_key(auth_server)
    permissions = topic_permissions(permissionmessages_pb2.TopicReadWrite, "c")
    revoked_token = (await wire.mint(admin, permissions, token_id="browser-1")).api_key
    other = (await wire.mint(admin, permissions, token_id="browser-2")).api_key
    call = await wire.subscribed(revoked_token, "c", "t")

    # Act
    result = _cli("token", "revoke", "browser-1", "--data-dir", str(auth_server.data_dir))
    ended = await stream_code(call)
    minted_later = (await wire.mint(admin, permissions, token_id="browser-1")).api_key

    # Assert
    assert result.returncode == 0, result.stderr
    assert "browser-1" in result.stderr
    assert ended == grpc.StatusCode.UNAUTHENTICATED
    assert await code_of(wire.publish(revoked_token, "c", "t")) == grpc.StatusCode.UNAUTHENTICATED
    await wire.publish(other, "c", "t")
    await wire.publish(minted_later, "c", "t")


async def test_switching_to_the_environment_admin_key_refuses_the_generated_one(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrange: a server with a generated admin key, which mints a token.
    first = start_server("--require-auth", "--create-cache", "c")
    generated = admin_key(first)
    async with grpc.aio.insecure_channel(first.endpoint) as channel:
        token = (await Wire(channel).mint(generated, topic_permissions(permissionmessages_pb2.TopicReadWrite))).api_key
    first.stop()
    configured = "an-admin-key-from-the-environment-" + os.urandom(8).hex()
    monkeypatch.setenv("TIDINGS_ADMIN_KEY", configured)

    # Act
    second = start_server("--require-auth", data_dir=first.data_dir)
    async with grpc.aio.insecure_channel(second.endpoint) as channel:
        wire = Wire(channel)
        codes = [await code_of(wire.publish(credential, "c", "t")) for credential in (generated, token)]
        await wire.publish(configured, "c", "t")

    # Assert
    assert codes == [grpc.StatusCode.UNAUTHENTICATED] * 2
    assert not (first.data_dir / "admin.key").exists()
    log = "".join(second.log)
    assert "admin key (super-user) is TIDINGS_ADMIN_KEY" in log
    assert configured not in log


def test_tls_with_a_bad_key_fails_naming_the_files(tmp_path: Path) -> None:
    cert, _ = self_signed_certificate(tmp_path)
    bad_key = tmp_path / "bad.pem"
    bad_key.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")

    result = _cli("server", "--port", "0", "--http-port", "0", "--data-dir", str(tmp_path / "d"),
                  "--tls-cert", str(cert), "--tls-key", str(bad_key))  # fmt: skip

    assert result.returncode == 1
    assert f"cannot use --tls-cert {cert} with --tls-key {bad_key}" in result.stderr
