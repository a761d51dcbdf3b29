"""``tidings webhook put|list|delete|secret|rotate``: manage a cache's webhooks."""

from __future__ import annotations

import click

from tidings import (
    DeleteWebhook,
    GetWebhookSecret,
    ListWebhooks,
    PutWebhook,
    RotateWebhookSecret,
    TopicClient,
)
from tidings.cli._client import client_arguments, client_command, connection_options, fail


@click.group()
def webhook() -> None:
    """Create, list and delete webhooks: topics whose messages the server POSTs to a URL, signed."""


@webhook.command()
@click.argument("cache")
@click.argument("name")
@click.option("--topic", required=True, help="The topic whose messages are POSTed.")
@click.option("--url", required=True, help="The http:// or https:// URL the messages are POSTed to.")
@connection_options
@client_command
def put(cache: str, name: str, topic: str, url: str, endpoint: str | None, api_key: str | None, timeout: float) -> None:
    """Create (or replace) webhook NAME of CACHE; prints its signing secret."""
    with TopicClient(**client_arguments(endpoint, api_key, timeout)) as client:
        response = client.put_webhook(cache, name, topic, url)
    if isinstance(response, PutWebhook.Error):
        fail(response, "put failed")
    click.echo(response.secret)


@webhook.command(name="list")
@click.argument("cache")
@connection_options
@client_command
def list_webhooks(cache: str, endpoint: str | None, api_key: str | None, timeout: float) -> None:
    """List the webhooks of CACHE: name, topic and URL, tab-separated, one per line."""
    with TopicClient(**client_arguments(endpoint, api_key, timeout)) as client:
        response = client.list_webhooks(cache)
    if isinstance(response, ListWebhooks.Error):
        fail(response, "list failed")
    for info in response.webhooks:
        click.echo(f"{info.name}\t{info.topic_name}\t{info.url}")


@webhook.command()
@click.argument("cache")
@click.argument("name")
@connection_options
@client_command
def delete(cache: str, name: str, endpoint: str | None, api_key: str | None, timeout: float) -> None:
    """Delete webhook NAME of CACHE (its deliveries stop)."""
    with TopicClient(**client_arguments(endpoint, api_key, timeout)) as client:
        response = client.delete_webhook(cache, name)
    if isinstance(response, DeleteWebhook.Error):
        fail(response, "delete failed")


@webhook.command()
@click.argument("cache")
@click.argument("name")
@connection_options
@client_command
def secret(cache: str, name: str, endpoint: str | None, api_key: str | None, timeout: float) -> None:
    """Print the signing secret of webhook NAME of CACHE."""
    with TopicClient(**client_arguments(endpoint, api_key, timeout)) as client:
        response = client.get_webhook_secret(cache, name)
    if isinstance(response, GetWebhookSecret.Error):
        fail(response, "secret failed")
    click.echo(response.secret)


@webhook.command()
@click.argument("cache")
@click.argument("name")
@connection_options
@client_command
def rotate(cache: str, name: str, endpoint: str | None, api_key: str | None, timeout: float) -> None:
    """Give webhook NAME of CACHE a new signing secret and print it (the old one stops signing at once)."""
    with TopicClient(**client_arguments(endpoint, api_key, timeout)) as client:
        response = client.rotate_webhook_secret(cache, name)
    if isinstance(response, RotateWebhookSecret.Error):
        fail(response, "rotate failed")
    click.echo(response.secret)
