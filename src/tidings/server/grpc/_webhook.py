"""``webhook.Webhook``: Momento's webhook management, linked to the core's webhook registry."""

from __future__ import annotations

from typing import Any, Final

import grpc
import grpc.aio

from tidings.protos import webhook_pb2 as pb
from tidings.server.auth import Authenticator
from tidings.server.core import TopicsService
from tidings.server.grpc._auth import credential_of
from tidings.server.grpc._context import CallContext
from tidings.server.grpc._status import guarded, parse_request
from tidings.server.webhooks import Webhook, WebhookRegistry

SERVICE: Final = "webhook.Webhook"


def _wire(webhook: Webhook) -> pb._Webhook:
    return pb._Webhook(
        webhook_id=pb._WebhookId(cache_name=webhook.cache_name, webhook_name=webhook.name),
        topic_name=webhook.topic_name,
        destination=pb._WebhookDestination(post_url=webhook.url),
    )


class WebhookServicer:
    """PutWebhook, DeleteWebhook, ListWebhooks, GetWebhookSecret and RotateWebhookSecret (super-user only)."""

    def __init__(self, service: TopicsService, registry: WebhookRegistry, authenticator: Authenticator) -> None:
        self._registry = registry
        self._authenticate = authenticator.authenticate
        self.stats = service.stats_for("grpc")

    @guarded
    async def put_webhook(self, data: bytes, context: CallContext) -> bytes:
        """Create or replace a webhook; answers its secret (the existing one on replace)."""
        principal = self._authenticate(credential_of(context))
        webhook = parse_request(pb._PutWebhookRequest, data).webhook
        stored = await self._registry.put(
            webhook.webhook_id.cache_name,
            webhook.webhook_id.webhook_name,
            webhook.topic_name,
            webhook.destination.post_url,
            principal,
        )
        return pb._PutWebhookResponse(secret_string=stored.secret).SerializeToString()

    @guarded
    async def delete_webhook(self, data: bytes, context: CallContext) -> bytes:
        """Delete a webhook; its deliveries stop."""
        principal = self._authenticate(credential_of(context))
        webhook_id = parse_request(pb._DeleteWebhookRequest, data).webhook_id
        await self._registry.delete(webhook_id.cache_name, webhook_id.webhook_name, principal)
        return b""  # _DeleteWebhookResponse is empty

    @guarded
    async def list_webhooks(self, data: bytes, context: CallContext) -> bytes:
        """The cache's webhooks (without their secrets)."""
        principal = self._authenticate(credential_of(context))
        cache_name = parse_request(pb._ListWebhookRequest, data).cache_name
        webhooks = await self._registry.list(cache_name, principal)
        return pb._ListWebhooksResponse(webhook=[_wire(webhook) for webhook in webhooks]).SerializeToString()

    @guarded
    async def get_webhook_secret(self, data: bytes, context: CallContext) -> bytes:
        """The webhook's current signing secret."""
        principal = self._authenticate(credential_of(context))
        request = parse_request(pb._GetWebhookSecretRequest, data)
        webhook = await self._registry.get(request.cache_name, request.webhook_name, principal)
        return pb._GetWebhookSecretResponse(
            cache_name=webhook.cache_name, webhook_name=webhook.name, secret_string=webhook.secret
        ).SerializeToString()

    @guarded
    async def rotate_webhook_secret(self, data: bytes, context: CallContext) -> bytes:
        """A new signing secret; the old one stops signing at once."""
        principal = self._authenticate(credential_of(context))
        webhook_id = parse_request(pb._RotateWebhookSecretRequest, data).webhook_id
        webhook = await self._registry.rotate_secret(webhook_id.cache_name, webhook_id.webhook_name, principal)
        return pb._RotateWebhookSecretResponse(secret_string=webhook.secret).SerializeToString()

    def handlers(self) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
        """The method handlers to register under `SERVICE`."""
        return {
            "PutWebhook": grpc.unary_unary_rpc_method_handler(self.put_webhook),
            "DeleteWebhook": grpc.unary_unary_rpc_method_handler(self.delete_webhook),
            "ListWebhooks": grpc.unary_unary_rpc_method_handler(self.list_webhooks),
            "GetWebhookSecret": grpc.unary_unary_rpc_method_handler(self.get_webhook_secret),
            "RotateWebhookSecret": grpc.unary_unary_rpc_method_handler(self.rotate_webhook_secret),
        }
