"""API keys, disposable tokens and TLS through the SDK, on servers run with ``--require-auth`` or ``--tls-cert``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import grpc.aio
from momento_wire_types import permissionmessages_pb2, token_pb2, token_pb2_grpc

from tests.integration._server import ServerProcess
from tidings import (
    CacheClientAsync,
    ErrorCode,
    ListCaches,
    TopicClientAsync,
    TopicPublish,
    TopicSubscribe,
    TopicSubscriptionItem,
)

StartServer = Callable[..., ServerProcess]
Perm = permissionmessages_pb2.PermissionsType
WITHIN = 10.0

# A self-signed certificate for localhost and 127.0.0.1 (valid until 2126) and its key: test material only.
CERTIFICATE = b"""-----BEGIN CERTIFICATE-----
MIIBmzCCAUGgAwIBAgIUMJjz/aty8WRrbvmmQH+nGpa15xUwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTEyODAyNTk0MloYDzIxMjYxMTA0
MDI1OTQyWjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAAQu7ktto0MvHFObLwGrkesIjR9GqHWRGM8F5xrBjg2GYHsh1L7xG6k5
WmUgn+oL5uPkoHn5j47ds1VDnIJ5oVrto28wbTAdBgNVHQ4EFgQUzspvBMvLEUXh
zrLenEeMYCE1EUIwHwYDVR0jBBgwFoAUzspvBMvLEUXhzrLenEeMYCE1EUIwDwYD
VR0TAQH/BAUwAwEB/zAaBgNVHREEEzARgglsb2NhbGhvc3SHBH8AAAEwCgYIKoZI
zj0EAwIDSAAwRQIgOKQ8KDC27Aq0Mw7ZG95T+Y/QeuwWXzyMZ9pUfgcvP4gCIQCt
XLRZT2abM4zvfO/KsLN8lpOcGzEYPyyIi9F2do0BGA==
-----END CERTIFICATE-----
"""
PRIVATE_KEY = b"""-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgxYoQelFz3mpTnxHB
QaB3vnGVRgtSvo5BDftPyZrJQyyhRANCAAQu7ktto0MvHFObLwGrkesIjR9GqHWR
GM8F5xrBjg2GYHsh1L7xG6k5WmUgn+oL5uPkoHn5j47ds1VDnIJ5oVrt
-----END PRIVATE KEY-----
"""


def admin_key(server: ServerProcess) -> str:
    return (server.data_dir / "admin.key").read_text().strip()


def topic_permissions(role: permissionmessages_pb2.TopicRole) -> permissionmessages_pb2.Permissions:
    grant = Perm.TopicPermissions(role=role, all_caches=Perm.All(), all_topics=Perm.All())
    return permissionmessages_pb2.Permissions(
        explicit=permissionmessages_pb2.ExplicitPermissions(permissions=[Perm(topic_permissions=grant)])
    )


async def mint(server: ServerProcess, role: permissionmessages_pb2.TopicRole, token_id: str = "") -> str:
    """A disposable token (its ``api_key``, what clients send) minted with the admin key over the wire."""
    request = token_pb2._GenerateDisposableTokenRequest(
        expires=token_pb2._GenerateDisposableTokenRequest.Expires(valid_for_seconds=300),
        permissions=topic_permissions(role),
        token_id=token_id,
    )
    async with grpc.aio.insecure_channel(server.endpoint) as channel:
        response = await token_pb2_grpc.TokenStub(channel).GenerateDisposableToken(
            request, metadata=(("authorization", admin_key(server)),), timeout=WITHIN
        )
    return str(response.api_key)


async def test_auth_api_key_is_sent_on_every_call(start_server: StartServer) -> None:
    server = start_server("--require-auth", "--create-cache", "c")
    key = admin_key(server)

    async with TopicClientAsync(server.endpoint) as anonymous, CacheClientAsync(server.endpoint) as anonymous_caches:
        refused = [
            await anonymous.publish("c", "t", "v"),
            await anonymous.subscribe("c", "t"),
            await anonymous_caches.list_caches(),
        ]
    async with TopicClientAsync(server.endpoint, key) as client, CacheClientAsync(server.endpoint, key) as caches:
        subscription = await client.subscribe("c", "t")
        published = await client.publish("c", "t", "v")
        listed = await caches.list_caches()
        assert isinstance(subscription, TopicSubscribe.SubscriptionAsync)
        item = await asyncio.wait_for(subscription.__anext__(), WITHIN)

    assert [response.error_code for response in refused] == [ErrorCode.AUTHENTICATION] * 3  # type: ignore[union-attr]
    assert published == TopicPublish.Success()
    assert isinstance(listed, ListCaches.Success)
    assert listed.cache_names == ["c"]
    assert isinstance(item, TopicSubscriptionItem.Text)


async def test_auth_disposable_tokens_carry_their_id_and_their_permissions(start_server: StartServer) -> None:
    server = start_server("--require-auth", "--create-cache", "c")
    writer = await mint(server, permissionmessages_pb2.TopicWriteOnly, token_id="order-service")
    reader = await mint(server, permissionmessages_pb2.TopicReadOnly)

    async with (
        TopicClientAsync(server.endpoint, reader) as readers,
        TopicClientAsync(server.endpoint, writer) as writers,
    ):
        subscription = await readers.subscribe("c", "orders")
        assert isinstance(subscription, TopicSubscribe.SubscriptionAsync)
        published = await writers.publish("c", "orders", "order 1")
        item = await asyncio.wait_for(subscription.__anext__(), WITHIN)
        not_allowed_to_publish = await readers.publish("c", "orders", "nope")
        not_allowed_to_subscribe = await writers.subscribe("c", "orders")

    assert published == TopicPublish.Success()
    assert item == TopicSubscriptionItem.Text("order 1", 1, item.sequence_page, "order-service")  # type: ignore[union-attr]
    assert isinstance(not_allowed_to_publish, TopicPublish.Error)
    assert not_allowed_to_publish.error_code is ErrorCode.PERMISSION_DENIED
    assert isinstance(not_allowed_to_subscribe, TopicSubscribe.Error)
    assert not_allowed_to_subscribe.error_code is ErrorCode.PERMISSION_DENIED


async def test_tls_with_root_certificates(start_server: StartServer, tmp_path: Path) -> None:
    (tmp_path / "cert.pem").write_bytes(CERTIFICATE)
    (tmp_path / "key.pem").write_bytes(PRIVATE_KEY)
    server = start_server(
        "--tls-cert", str(tmp_path / "cert.pem"), "--tls-key", str(tmp_path / "key.pem"), "--create-cache", "c"
    )
    endpoint = f"localhost:{server.port}"

    async with TopicClientAsync(endpoint, tls=True, root_certificates=CERTIFICATE) as client:
        subscription = await client.subscribe("c", "t")
        published = await client.publish("c", "t", "secret")
        assert isinstance(subscription, TopicSubscribe.SubscriptionAsync)
        item = await asyncio.wait_for(subscription.__anext__(), WITHIN)
    async with TopicClientAsync(f"grpcs://{endpoint}", timeout=2) as untrusting:
        refused = await untrusting.publish("c", "t", "v")  # the system's roots do not know this certificate
    async with TopicClientAsync(endpoint, timeout=2) as plaintext:
        mismatched = await plaintext.publish("c", "t", "v")

    assert published == TopicPublish.Success()
    assert isinstance(item, TopicSubscriptionItem.Text)
    assert item.value == "secret"
    assert isinstance(refused, TopicPublish.Error)
    assert refused.error_code is ErrorCode.UNAVAILABLE
    assert isinstance(mismatched, TopicPublish.Error)
    assert mismatched.error_code in {ErrorCode.UNAVAILABLE, ErrorCode.TIMEOUT}
