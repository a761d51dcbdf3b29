"""``webhook.Webhook`` over the wire (raw gRPC): management, errors, and webhooks surviving a restart."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest
from google.protobuf.message import Message
from momento_wire_types import controlclient_pb2, controlclient_pb2_grpc

from tests.integration._server import ServerProcess
from tests.integration.conftest import create_cache
from tidings.protos import webhook_pb2 as pb

URL = "http://127.0.0.1:9/hook"


def _call(server: ServerProcess, method: str, request: object, response: type[Message]) -> object:
    with grpc.insecure_channel(server.endpoint) as channel:
        invoke = channel.unary_unary(
            f"/webhook.Webhook/{method}",
            request_serializer=lambda message: message.SerializeToString(),
            response_deserializer=response.FromString,
        )
        return invoke(request, timeout=10)


def _put(server: ServerProcess, cache: str, name: str, topic: str = "topic", url: str = URL) -> str:
    request = pb._PutWebhookRequest(
        webhook=pb._Webhook(
            webhook_id=pb._WebhookId(cache_name=cache, webhook_name=name),
            topic_name=topic,
            destination=pb._WebhookDestination(post_url=url),
        )
    )
    response = _call(server, "PutWebhook", request, pb._PutWebhookResponse)
    assert isinstance(response, pb._PutWebhookResponse)
    return response.secret_string


def _list(server: ServerProcess, cache: str) -> list[tuple[str, str, str, str]]:
    response = _call(server, "ListWebhooks", pb._ListWebhookRequest(cache_name=cache), pb._ListWebhooksResponse)
    assert isinstance(response, pb._ListWebhooksResponse)
    return [
        (w.webhook_id.cache_name, w.webhook_id.webhook_name, w.topic_name, w.destination.post_url)
        for w in response.webhook
    ]


def _secret(server: ServerProcess, cache: str, name: str) -> str:
    request = pb._GetWebhookSecretRequest(cache_name=cache, webhook_name=name)
    response = _call(server, "GetWebhookSecret", request, pb._GetWebhookSecretResponse)
    assert isinstance(response, pb._GetWebhookSecretResponse)
    assert (response.cache_name, response.webhook_name) == (cache, name)
    return response.secret_string


def test_webhook_service_puts_lists_rotates_and_deletes(server: ServerProcess, cache: str) -> None:
    # Act
    secret = _put(server, cache, "hook")
    replaced_secret = _put(server, cache, "hook", topic="other")
    listed = _list(server, cache)
    got = _secret(server, cache, "hook")
    rotate = pb._RotateWebhookSecretRequest(webhook_id=pb._WebhookId(cache_name=cache, webhook_name="hook"))
    rotated = _call(server, "RotateWebhookSecret", rotate, pb._RotateWebhookSecretResponse)
    after_rotation = _secret(server, cache, "hook")
    delete = pb._DeleteWebhookRequest(webhook_id=pb._WebhookId(cache_name=cache, webhook_name="hook"))
    _call(server, "DeleteWebhook", delete, pb._DeleteWebhookResponse)

    # Assert
    assert secret
    assert replaced_secret == secret == got
    assert listed == [(cache, "hook", "other", URL)]
    assert isinstance(rotated, pb._RotateWebhookSecretResponse)
    assert rotated.secret_string == after_rotation != secret
    assert _list(server, cache) == []


@pytest.mark.parametrize(
    ("call", "code"),
    [
        pytest.param(lambda s, c: _put(s, "no-such-cache", "hook"), grpc.StatusCode.NOT_FOUND, id="put-unknown-cache"),
        pytest.param(lambda s, c: _list(s, "no-such-cache"), grpc.StatusCode.NOT_FOUND, id="list-unknown-cache"),
        pytest.param(lambda s, c: _secret(s, c, "no-such-hook"), grpc.StatusCode.NOT_FOUND, id="unknown-webhook"),
        pytest.param(lambda s, c: _put(s, c, "hook", url="ftp://x/"), grpc.StatusCode.INVALID_ARGUMENT, id="ftp"),
        pytest.param(lambda s, c: _put(s, c, "hook", url="http://"), grpc.StatusCode.INVALID_ARGUMENT, id="no-host"),
        pytest.param(lambda s, c: _put(s, c, ""), grpc.StatusCode.INVALID_ARGUMENT, id="empty-name"),
        pytest.param(lambda s, c: _put(s, c, "hook", topic=""), grpc.StatusCode.INVALID_ARGUMENT, id="empty-topic"),
    ],
)
def test_webhook_service_refuses_bad_requests(
    server: ServerProcess, cache: str, call: Callable[[ServerProcess, str], object], code: grpc.StatusCode
) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        call(server, cache)
    assert raised.value.code() == code
    assert _list(server, cache) == []


def test_webhooks_survive_a_restart_and_go_with_their_cache(start_server: Callable[..., ServerProcess]) -> None:
    # Arrange
    server = start_server()
    cache = create_cache(server)
    secret = _put(server, cache, "hook")

    # Act
    server.restart()
    listed = _list(server, cache)
    kept_secret = _secret(server, cache, "hook")
    with grpc.insecure_channel(server.endpoint) as channel:
        controlclient_pb2_grpc.ScsControlStub(channel).DeleteCache(
            controlclient_pb2._DeleteCacheRequest(cache_name=cache), timeout=10
        )
    create_cache(server, cache)

    # Assert
    assert listed == [(cache, "hook", "topic", URL)]
    assert kept_secret == secret
    assert _list(server, cache) == []
