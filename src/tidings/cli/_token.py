"""``tidings token create``: mint a disposable token on a running server, with a super-user ``--api-key``;
``tidings token revoke``: refuse the tokens with a token id (in the data directory, like ``tidings key``).

Scopes are written as for ``tidings key create`` and read by the same parser (`parse_scope`); its grants
become the SDK's `TopicScope` s here.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from tidings import (
    ALL_CACHES,
    ALL_TOPICS,
    AuthClient,
    GenerateDisposableToken,
    TopicNamePrefix,
    TopicScope,
)
from tidings.cli._client import client_arguments, client_command, connection_options, fail
from tidings.cli._keys import parse_duration, redis_options, with_store
from tidings.cli._params import data_dir_option
from tidings.server.auth import MAX_TOKEN_ID_LENGTH, MAX_TOKEN_LIFETIME, ScopeSyntaxError, parse_scope
from tidings.server.core import TopicGrant, TopicPermission

_SCOPE_OF_ROLE = {
    TopicPermission.READ_WRITE: TopicScope.publish_subscribe,
    TopicPermission.READ_ONLY: TopicScope.subscribe_only,
    TopicPermission.WRITE_ONLY: TopicScope.publish_only,
}


def scope_of(grant: TopicGrant) -> TopicScope:
    """The SDK scope allowing what ``grant`` allows."""
    cache = ALL_CACHES if grant.cache_name is None else grant.cache_name
    if grant.topic_name is not None:
        return _SCOPE_OF_ROLE[grant.role](cache, grant.topic_name)
    if grant.topic_prefix is not None:
        return _SCOPE_OF_ROLE[grant.role](cache, TopicNamePrefix(grant.topic_prefix))
    return _SCOPE_OF_ROLE[grant.role](cache, ALL_TOPICS)


@click.group()
def token() -> None:
    """Mint and revoke disposable tokens: short-lived, limited to some topics, for browsers and untrusted services."""


@token.command()
@click.argument("scopes", nargs=-1, required=True, metavar="SCOPE...")
@click.option(
    "--expires",
    metavar="DURATION",
    default="15m",
    show_default=True,
    help="Valid for this long (30s, 15m, 1h; at most 1h).",
)
@click.option("--token-id", metavar="ID", help="Shown to subscribers on every value published with the token.")
@click.option("--json", "as_json", is_flag=True, help="Print token, momento_token, endpoint, expires_at and token_id.")
@connection_options
@client_command
def create(
    scopes: tuple[str, ...],
    expires: str,
    token_id: str | None,
    as_json: bool,
    endpoint: str | None,
    api_key: str | None,
    timeout: float,
) -> None:
    """Mint a token for SCOPE... and print it; --api-key must be a super-user key.

    Each SCOPE is ROLE:CACHE[:TOPIC] with ROLE readwrite, readonly or writeonly (or publish-subscribe,
    subscribe-only, publish-only); CACHE a name or *; TOPIC a name, a prefix* or * (the default).
    Example: `tidings token create readonly:orders:events-* --token-id browser-42`.
    """
    try:
        topic_scopes = [scope_of(parse_scope(scope)) for scope in scopes]
    except (ScopeSyntaxError, ValueError) as error:
        raise click.BadParameter(str(error), param_hint="SCOPE") from None
    lifetime = int(parse_duration(expires))
    with AuthClient(**client_arguments(endpoint, api_key, timeout)) as client:
        response = client.generate_disposable_token(topic_scopes, lifetime, token_id)
    if isinstance(response, GenerateDisposableToken.Error):
        fail(response, "token create failed")
    if not as_json:
        click.echo(response.token)
        click.echo(f"valid until {response.expires_at:%Y-%m-%d %H:%M:%SZ}", err=True)
        return
    click.echo(
        json.dumps(
            {
                "token": response.token,
                "momento_token": response.momento_token,
                "endpoint": response.endpoint,
                "expires_at": int(response.expires_at.timestamp()),
                "token_id": response.token_id,
            }
        )
    )


@token.command()
@click.argument("token_id", metavar="ID")
@data_dir_option
@redis_options
def revoke(token_id: str, data_dir: Path, redis_url: str | None, redis_cluster: str | None) -> None:
    """Revoke every token minted until now with token id ID (`token create --token-id`).

    They are refused from now on, and a running server ends their subscriptions within a second. Tokens
    minted with ID later work. (To revoke every token a key minted, revoke the key: `tidings key revoke`.)
    """
    if not 1 <= len(token_id) <= MAX_TOKEN_ID_LENGTH:
        raise click.BadParameter(f"token ids are 1 to {MAX_TOKEN_ID_LENGTH} characters", param_hint="ID")
    with_store(data_dir, lambda store: store.revoke_token(token_id, time.time()), redis_url, redis_cluster)
    click.echo(
        f"tokens with id {token_id!r} minted until now are revoked (they would have expired within "
        f"{MAX_TOKEN_LIFETIME // 60} minutes)",
        err=True,
    )
