"""The webhook calls of `TopicClientAsync` over ``webhook.Webhook`` (Momento's webhook service)."""

from __future__ import annotations

from typing import Final

import grpc.aio

from tidings.client._errors import error_from, invalid_argument
from tidings.client._unary_client import UnaryClientAsync
from tidings.client._validation import name_problem
from tidings.client._webhook_responses import (
    DeleteWebhook,
    GetWebhookSecret,
    ListWebhooks,
    PutWebhook,
    RotateWebhookSecret,
    WebhookInfo,
)
from tidings.protos import webhook_pb2 as pb

_SERVICE: Final = "/webhook.Webhook/"


class WebhookCallsAsync(UnaryClientAsync):
    """Put, list, delete webhooks and get or rotate their signing secrets (super-user calls)."""

    async def put_webhook(
        self, cache_name: str, webhook_name: str, topic_name: str, url: str
    ) -> PutWebhook.Success | PutWebhook.Error:
        """POST every message of ``topic_name`` to ``url`` (http or https) from now on; replacing a webhook of
        that name keeps its secret. The secret signs each delivery (`tidings.webhooks.verify`)."""
        problem = (
            name_problem("cache_name", cache_name)
            or name_problem("webhook_name", webhook_name)
            or name_problem("topic_name", topic_name)
            or (None if url else "url must not be empty")
        )
        if problem is not None:
            return invalid_argument(PutWebhook.Error, problem)
        request = pb._PutWebhookRequest(
            webhook=pb._Webhook(
                webhook_id=pb._WebhookId(cache_name=cache_name, webhook_name=webhook_name),
                topic_name=topic_name,
                destination=pb._WebhookDestination(post_url=url),
            )
        )
        try:
            response = await self._call(_SERVICE + "PutWebhook", request, pb._PutWebhookResponse)
        except grpc.aio.AioRpcError as error:
            return error_from(PutWebhook.Error, error)
        return PutWebhook.Success(response.secret_string)

    async def list_webhooks(self, cache_name: str) -> ListWebhooks.Success | ListWebhooks.Error:
        """The cache's webhooks, sorted by name."""
        problem = name_problem("cache_name", cache_name)
        if problem is not None:
            return invalid_argument(ListWebhooks.Error, problem)
        try:
            response = await self._call(
                _SERVICE + "ListWebhooks", pb._ListWebhookRequest(cache_name=cache_name), pb._ListWebhooksResponse
            )
        except grpc.aio.AioRpcError as error:
            return error_from(ListWebhooks.Error, error)
        webhooks = (
            WebhookInfo(w.webhook_id.cache_name, w.webhook_id.webhook_name, w.topic_name, w.destination.post_url)
            for w in response.webhook
        )
        return ListWebhooks.Success(tuple(sorted(webhooks, key=lambda webhook: webhook.name)))

    async def delete_webhook(self, cache_name: str, webhook_name: str) -> DeleteWebhook.Success | DeleteWebhook.Error:
        """Delete a webhook; its deliveries stop (deleting one that does not exist succeeds)."""
        problem = name_problem("cache_name", cache_name) or name_problem("webhook_name", webhook_name)
        if problem is not None:
            return invalid_argument(DeleteWebhook.Error, problem)
        request = pb._DeleteWebhookRequest(webhook_id=pb._WebhookId(cache_name=cache_name, webhook_name=webhook_name))
        try:
            await self._call(_SERVICE + "DeleteWebhook", request, pb._DeleteWebhookResponse)
        except grpc.aio.AioRpcError as error:
            return error_from(DeleteWebhook.Error, error)
        return DeleteWebhook.Success()

    async def get_webhook_secret(
        self, cache_name: str, webhook_name: str
    ) -> GetWebhookSecret.Success | GetWebhookSecret.Error:
        """The secret the webhook's deliveries are signed with."""
        problem = name_problem("cache_name", cache_name) or name_problem("webhook_name", webhook_name)
        if problem is not None:
            return invalid_argument(GetWebhookSecret.Error, problem)
        request = pb._GetWebhookSecretRequest(cache_name=cache_name, webhook_name=webhook_name)
        try:
            response = await self._call(_SERVICE + "GetWebhookSecret", request, pb._GetWebhookSecretResponse)
        except grpc.aio.AioRpcError as error:
            return error_from(GetWebhookSecret.Error, error)
        return GetWebhookSecret.Success(response.cache_name, response.webhook_name, response.secret_string)

    async def rotate_webhook_secret(
        self, cache_name: str, webhook_name: str
    ) -> RotateWebhookSecret.Success | RotateWebhookSecret.Error:
        """Give the webhook a new secret; the old one stops signing at once."""
        problem = name_problem("cache_name", cache_name) or name_problem("webhook_name", webhook_name)
        if problem is not None:
            return invalid_argument(RotateWebhookSecret.Error, problem)
        request = pb._RotateWebhookSecretRequest(
            webhook_id=pb._WebhookId(cache_name=cache_name, webhook_name=webhook_name)
        )
        try:
            response = await self._call(_SERVICE + "RotateWebhookSecret", request, pb._RotateWebhookSecretResponse)
        except grpc.aio.AioRpcError as error:
            return error_from(RotateWebhookSecret.Error, error)
        return RotateWebhookSecret.Success(response.secret_string)
