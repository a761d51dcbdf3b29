"""``tidings cache create|delete|list``: manage caches."""

from __future__ import annotations

import click

from tidings import CacheClient, CreateCache, DeleteCache, ListCaches
from tidings.cli._client import client_arguments, client_command, connection_options, fail


@click.group()
def cache() -> None:
    """Create, delete and list caches (the namespaces topics live in)."""


@cache.command()
@click.argument("name")
@click.option("--exist-ok", is_flag=True, help="Succeed if the cache exists already.")
@connection_options
@client_command
def create(name: str, exist_ok: bool, endpoint: str | None, api_key: str | None, timeout: float) -> None:
    """Create the cache NAME."""
    with CacheClient(**client_arguments(endpoint, api_key, timeout)) as client:
        response = client.create_cache(name)
    match response:
        case CreateCache.CacheAlreadyExists() if not exist_ok:
            raise click.ClickException(f"create failed: ALREADY_EXISTS: cache already exists: {name!r}")
        case CreateCache.Error():
            fail(response, "create failed")


@cache.command()
@click.argument("name")
@connection_options
@client_command
def delete(name: str, endpoint: str | None, api_key: str | None, timeout: float) -> None:
    """Delete the cache NAME (its subscriptions end)."""
    with CacheClient(**client_arguments(endpoint, api_key, timeout)) as client:
        response = client.delete_cache(name)
    if isinstance(response, DeleteCache.Error):
        fail(response, "delete failed")


@cache.command(name="list")
@connection_options
@client_command
def list_caches(endpoint: str | None, api_key: str | None, timeout: float) -> None:
    """List the caches, one name per line."""
    with CacheClient(**client_arguments(endpoint, api_key, timeout)) as client:
        response = client.list_caches()
    if isinstance(response, ListCaches.Error):
        fail(response, "list failed")
    for name in response.cache_names:
        click.echo(name)
