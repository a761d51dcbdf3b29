"""Our SDK's webhook calls (async and blocking) against a real server, delivering to a real receiver."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from tests.integration._receiver import Receiver
from tidings import (
    DeleteWebhook,
    ErrorCode,
    GetWebhookSecret,
    ListWebhooks,
    PutWebhook,
    RotateWebhookSecret,
    TopicClient,
    TopicClientAsync,
    TopicPublish,
    WebhookInfo,
)
from tidings.webhooks import SIGNATURE_HEADER, verify


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


async def test_async_client_manages_a_webhook_that_delivers(
    client: TopicClientAsync, cache: str, receiver: Receiver
) -> None:
    # Act
    put = await client.put_webhook(cache, "hook", "t", receiver.url)
    listed = await client.list_webhooks(cache)
    got = await client.get_webhook_secret(cache, "hook")
    published = await client.publish(cache, "t", "hello")
    (delivery,) = await asyncio.to_thread(receiver.wait_for, 1)
    rotated = await client.rotate_webhook_secret(cache, "hook")
    deleted = await client.delete_webhook(cache, "hook")
    after = await client.list_webhooks(cache)

    # Assert
    assert isinstance(put, PutWebhook.Success)
    assert listed == ListWebhooks.Success((WebhookInfo(cache, "hook", "t", receiver.url),))
    assert got == GetWebhookSecret.Success(cache, "hook", put.secret)
    assert isinstance(published, TopicPublish.Success)
    assert json.loads(delivery.body)["text"] == "hello"
    assert verify(delivery.body, delivery.headers[SIGNATURE_HEADER], put.secret)
    assert isinstance(rotated, RotateWebhookSecret.Success)
    assert rotated.secret != put.secret
    assert deleted == DeleteWebhook.Success()
    assert after == ListWebhooks.Success(())


def test_blocking_client_manages_webhooks(sync_client: TopicClient, cache: str) -> None:
    # Act
    put = sync_client.put_webhook(cache, "b", "t", "https://example.test/b")
    sync_client.put_webhook(cache, "a", "t", "https://example.test/a")
    listed = sync_client.list_webhooks(cache)
    rotated = sync_client.rotate_webhook_secret(cache, "b")
    got = sync_client.get_webhook_secret(cache, "b")
    deleted = sync_client.delete_webhook(cache, "b")

    # Assert
    assert isinstance(put, PutWebhook.Success)
    assert isinstance(listed, ListWebhooks.Success)
    assert listed.webhook_names == ["a", "b"]
    assert isinstance(rotated, RotateWebhookSecret.Success)
    assert got == GetWebhookSecret.Success(cache, "b", rotated.secret)
    assert deleted == DeleteWebhook.Success()


async def test_webhook_errors_are_responses(client: TopicClientAsync, cache: str) -> None:
    # Act
    bad_url = await client.put_webhook(cache, "hook", "t", "ftp://example.test/")
    empty_name = await client.put_webhook(cache, "", "t", "https://example.test/")
    unknown_cache = await client.list_webhooks("no-such-cache")
    unknown_webhook = await client.get_webhook_secret(cache, "nope")

    # Assert
    assert isinstance(bad_url, PutWebhook.Error)
    assert bad_url.error_code is ErrorCode.INVALID_ARGUMENT
    assert "post_url" in bad_url.message
    assert isinstance(empty_name, PutWebhook.Error)
    assert empty_name.error_code is ErrorCode.INVALID_ARGUMENT
    assert isinstance(unknown_cache, ListWebhooks.Error)
    assert unknown_cache.error_code is ErrorCode.CACHE_NOT_FOUND
    assert isinstance(unknown_webhook, GetWebhookSecret.Error)
    assert "webhook not found" in unknown_webhook.message


def test_secrets_are_not_in_reprs() -> None:
    assert "s3cret" not in repr(PutWebhook.Success("s3cret"))
    assert "s3cret" not in repr(GetWebhookSecret.Success("c", "w", "s3cret"))
