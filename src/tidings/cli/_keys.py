"""``tidings key create|list|revoke``: API keys, managed in the server's data directory (or its Redis).

These commands open the store directly (not over the network), so they work whether or not the server is
running; a running server picks up changes within a second (a revoked key's open subscriptions end). With
``--redis-url`` / ``--redis-cluster`` (as the servers were started with) they manage the keys in Redis.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import click
from rich.console import Console
from rich.table import Table

from tidings.cli._params import DataDirectoryUnusable, data_dir_option
from tidings.server.auth import ApiKey, KeyStore, ScopeSyntaxError, describe_grant, new_api_key, parse_scope
from tidings.server.backend import ServerStore, open_backend
from tidings.server.config import Settings
from tidings.server.core import Unavailable
from tidings.server.store import DataDirectoryError

_DURATION = re.compile(r"^([0-9]+)([smhdw])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
T = TypeVar("T")


# Longer than any key should live; also keeps dates printable.
MAX_KEY_LIFETIME = 10 * 365 * 86400
# The width `key list` lays its table out in when stdout is not a terminal: wider than any row.
_UNBOUNDED_WIDTH = 1_000_000


def parse_duration(text: str) -> float:
    """Seconds in ``30s``, ``15m``, ``12h``, ``30d`` or ``2w`` (at most ten years)."""
    match = _DURATION.match(text.strip().lower())
    if match is None:
        raise click.BadParameter(f"{text!r} is not a duration (examples: 15m, 12h, 30d)")
    seconds = int(match.group(1)) * _SECONDS[match.group(2)]
    if not 0 < seconds <= MAX_KEY_LIFETIME:
        raise click.BadParameter(f"{text!r} is out of range: more than 0 seconds, at most ten years")
    return seconds


def with_store(
    data_dir: Path,
    action: Callable[[KeyStore], Awaitable[T]],
    redis_url: str | None = None,
    redis_cluster: str | None = None,
) -> T:
    """Run ``action`` on the key store: the one in Redis with ``redis_url`` / ``redis_cluster``, else the one in
    ``data_dir``; an unusable directory or an unreachable Redis is a one-line error."""

    try:
        # The servers' own choice of store (`open_backend`), for these options.
        backend = open_backend(
            Settings(data_dir=data_dir, redis_url=redis_cluster or redis_url or None, redis_cluster=bool(redis_cluster))
        )
    except ValueError as error:
        raise click.ClickException(str(error)) from None

    async def run() -> T:
        try:
            store: ServerStore = await backend.open_store(create=False)
        except Unavailable as error:
            raise click.ClickException(f"cannot use Redis: {error.message}") from None
        try:
            return await action(store)
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    except DataDirectoryError as error:
        raise DataDirectoryUnusable(str(error)) from None


def redis_options(command: Callable[..., None]) -> Callable[..., None]:
    """``--redis-url`` and ``--redis-cluster``: the keys of servers that keep them in Redis."""
    command = click.option(
        "--redis-cluster", metavar="URL", envvar="TIDINGS_REDIS_CLUSTER", help="Manage the keys in this Redis Cluster."
    )(command)
    return click.option(
        "--redis-url", metavar="URL", envvar="TIDINGS_REDIS_URL", help="Manage the keys in this Redis."
    )(command)


@click.group()
def key() -> None:
    """Create, list and revoke API keys (long-lived credentials, stored hashed)."""


@key.command()
@click.argument("scopes", nargs=-1, metavar="[SCOPE]...")
@click.option("--super-user", is_flag=True, help="Everything, including cache management and minting tokens.")
@click.option("--expires", metavar="DURATION", help="Expire after this long (15m, 12h, 30d); default never.")
@click.option("--description", default="", help="What the key is for (shown by `key list`).")
@data_dir_option
@redis_options
def create(
    scopes: tuple[str, ...],
    super_user: bool,
    expires: str | None,
    description: str,
    data_dir: Path,
    redis_url: str | None,
    redis_cluster: str | None,
) -> None:
    """Create a key and print it (once: only its hash is kept).

    Each SCOPE is ROLE:CACHE[:TOPIC] with ROLE readwrite, readonly or writeonly (or publish-subscribe,
    subscribe-only, publish-only); CACHE a name or *; TOPIC a name, a prefix* or * (the default).
    Example: `tidings key create readonly:orders:events-*`.
    """
    if super_user == bool(scopes):
        raise click.UsageError("give either --super-user or at least one SCOPE")
    try:
        grants = tuple(parse_scope(scope) for scope in scopes)
    except ScopeSyntaxError as error:
        raise click.BadParameter(str(error), param_hint="SCOPE") from None
    now = time.time()
    expires_at = now + parse_duration(expires) if expires else None
    key_id, secret_key, secret_hash = new_api_key()
    record = ApiKey(key_id, secret_hash, super_user, grants, description, now, expires_at)
    with_store(data_dir, lambda store: store.add_api_key(record), redis_url, redis_cluster)
    click.echo(secret_key)
    click.echo(f"key {key_id} created; store it now, it is not shown again", err=True)


def _when(epoch: float | None) -> str:
    return "" if epoch is None else datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _scopes(record: ApiKey) -> str:
    return "super-user" if record.super_user else " ".join(describe_grant(g) for g in record.grants)


@key.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per key.")
@data_dir_option
@redis_options
def list_keys(as_json: bool, data_dir: Path, redis_url: str | None, redis_cluster: str | None) -> None:
    """List keys: ids, descriptions, scopes, expiry and revocation (never the keys)."""
    records = with_store(data_dir, lambda store: store.list_api_keys(), redis_url, redis_cluster)
    if as_json:
        for record in records:
            click.echo(
                json.dumps(
                    {
                        "id": record.key_id,
                        "description": record.description,
                        "scopes": _scopes(record),
                        "created_at": record.created_at,
                        "expires_at": record.expires_at,
                        "revoked_at": record.revoked_at,
                    }
                )
            )
        return
    table = Table()
    # Ids are copied into `key revoke`: never wrapped or elided, whatever the terminal's width.
    table.add_column("id", no_wrap=True, min_width=max((len(record.key_id) for record in records), default=2))
    for heading in ("description", "scopes", "created", "expires", "revoked"):
        table.add_column(heading, overflow="fold")
    for record in records:
        table.add_row(
            record.key_id,
            record.description,
            _scopes(record),
            _when(record.created_at),
            _when(record.expires_at),
            _when(record.revoked_at),
        )
    console = Console()
    if not console.is_terminal:
        # Piped or redirected (`| grep`, `> keys.txt`): one line per key, nothing wrapped or cut, whatever
        # $COLUMNS says; the table is as wide as its longest row.
        console = Console(width=_UNBOUNDED_WIDTH)
    console.print(table)


@key.command()
@click.argument("key_id", metavar="ID")
@data_dir_option
@redis_options
def revoke(key_id: str, data_dir: Path, redis_url: str | None, redis_cluster: str | None) -> None:
    """Revoke key ID and every token it minted: refused from now on; a running server ends their
    subscriptions within a second."""

    async def revoke_once(store: KeyStore) -> ApiKey | None:
        for record in await store.list_api_keys():
            if record.key_id == key_id:
                if record.revoked_at is None and not await store.revoke_api_key(key_id, time.time()):
                    return await revoke_once(store)  # revoked by someone else meanwhile: report that
                return record
        return None

    record = with_store(data_dir, revoke_once, redis_url, redis_cluster)
    if record is None:
        raise click.ClickException(f"no key with id {key_id!r} (`tidings key list` shows them)")
    if record.revoked_at is not None:
        raise click.ClickException(f"key {key_id} was already revoked at {_when(record.revoked_at)}")
    click.echo(f"key {key_id} revoked, with the tokens it minted", err=True)
