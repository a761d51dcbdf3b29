"""The API key store contract (auth's `KeyStore`), over the SQLite and the Redis store."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tidings.server.auth import MAX_TOKEN_LIFETIME, ApiKey, parse_scope
from tidings.server.store.redis import RedisStore
from tidings.server.store.sqlite import SqliteStore

_prefixes = itertools.count(1)


@pytest.fixture(params=["sqlite", "redis"])
async def key_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqliteStore | RedisStore]:
    store: SqliteStore | RedisStore
    if request.param == "sqlite":
        store = await SqliteStore.open(tmp_path)
    else:
        store = await RedisStore.open(request.getfixturevalue("redis_server").url, prefix=f"k{next(_prefixes)}:")
    yield store
    await store.close()


def _key(key_id: str, created_at: float, **fields: object) -> ApiKey:
    return ApiKey(key_id, f"hash-{key_id}", created_at=created_at, **fields)  # type: ignore[arg-type]


async def test_key_store_lists_added_keys_in_creation_order_with_every_field(
    key_store: SqliteStore | RedisStore,
) -> None:
    # Arrange
    grants = (parse_scope("rw:cache:topic"), parse_scope("ro:other"))
    restricted = _key("b", 2.0, super_user=False, grants=grants, description="sensors", expires_at=99.5)
    admin = _key("a", 1.0, super_user=True, grants=())

    # Act
    await key_store.add_api_key(restricted)
    await key_store.add_api_key(admin)

    # Assert
    assert await key_store.list_api_keys() == [admin, restricted]


async def test_key_store_revokes_once_and_only_known_keys(key_store: SqliteStore | RedisStore) -> None:
    # Arrange
    await key_store.add_api_key(_key("a", 1.0, super_user=True, grants=()))

    # Act
    first = await key_store.revoke_api_key("a", 50.0)
    again = await key_store.revoke_api_key("a", 60.0)
    unknown = await key_store.revoke_api_key("nope", 60.0)

    # Assert
    assert (first, again, unknown) == (True, False, False)
    assert [key.revoked_at for key in await key_store.list_api_keys()] == [50.0]


async def test_key_store_version_changes_on_add_and_revoke(key_store: SqliteStore | RedisStore) -> None:
    # Arrange
    initial = await key_store.api_keys_version()

    # Act
    await key_store.add_api_key(_key("a", 1.0, super_user=True, grants=()))
    added = await key_store.api_keys_version()
    await key_store.revoke_api_key("a", 2.0)
    revoked = await key_store.api_keys_version()

    # Assert
    assert initial < added < revoked


async def test_redis_store_shares_one_signing_secret_between_nodes(redis_server: object) -> None:
    # Arrange
    url = redis_server.url  # type: ignore[attr-defined]
    prefix = f"k{next(_prefixes)}:"
    first, second = await RedisStore.open(url, prefix=prefix), await RedisStore.open(url, prefix=prefix)

    # Act
    try:
        secrets = [await first.load_or_create_secret(), await second.load_or_create_secret()]
    finally:
        await first.close()
        await second.close()

    # Assert
    assert secrets[0] == secrets[1]
    assert len(secrets[0]) >= 32


async def test_redis_store_keeps_the_greatest_page_floor_any_node_saved(redis_server: object) -> None:
    # Arrange
    store = await RedisStore.open(redis_server.url, prefix=f"k{next(_prefixes)}:")  # type: ignore[attr-defined]

    # Act
    try:
        await store.save_page_floor(1_800_000_000_000_000)
        await store.save_page_floor(1_700_000_000_000_000)  # another node, behind
        floor = await store.load_page_floor()
    finally:
        await store.close()

    # Assert
    assert floor == 1_800_000_000_000_000


async def test_key_store_keeps_token_revocations_for_the_longest_token_lifetime(
    key_store: SqliteStore | RedisStore,
) -> None:
    # Arrange
    version = await key_store.api_keys_version()

    # Act: a revocation, a later one of the same id, and one so much later that the first id's tokens expired.
    await key_store.revoke_token("a", 1000.0)
    await key_store.revoke_token("a", 900.0)  # never moves back
    await key_store.revoke_token("b", 1000.0 + MAX_TOKEN_LIFETIME)
    kept = await key_store.list_revoked_tokens()
    await key_store.revoke_token("c", 1001.0 + MAX_TOKEN_LIFETIME)
    pruned = await key_store.list_revoked_tokens()
    bumped = await key_store.api_keys_version()

    # Assert
    assert kept == {"a": 1000.0, "b": 1000.0 + MAX_TOKEN_LIFETIME}
    assert pruned == {"b": 1000.0 + MAX_TOKEN_LIFETIME, "c": 1001.0 + MAX_TOKEN_LIFETIME}
    assert bumped == version + 4  # each revocation reaches running servers


async def test_redis_store_gives_a_deployment_one_id_and_one_generated_admin_key(redis_server: object) -> None:
    # Arrange: two nodes' stores on one Redis, each with an admin key of its own to offer.
    url = redis_server.url  # type: ignore[attr-defined]
    prefix = f"k{next(_prefixes)}:"
    first, second = await RedisStore.open(url, prefix=prefix), await RedisStore.open(url, prefix=prefix)
    offered = [_key("admin1", 1.0, super_user=True, grants=()), _key("admin2", 2.0, super_user=True, grants=())]

    try:
        # Act: both claim at once; then the winner's key is revoked and the other claims again.
        ids = await asyncio.gather(first.deployment_id(), second.deployment_id())
        holders = await asyncio.gather(first.claim_admin_key(offered[0]), second.claim_admin_key(offered[1]))
        stored = [key.key_id for key in await first.list_api_keys()]
        await first.revoke_api_key(holders[0], 3.0)
        loser = offered[1] if holders[0] == "admin1" else offered[0]
        replaced = await second.claim_admin_key(loser)
    finally:
        await first.close()
        await second.close()

    # Assert
    assert ids[0] == ids[1]
    assert len(ids[0]) == 8
    assert holders[0] == holders[1]
    assert stored == [holders[0]]  # the loser's key was not stored
    assert replaced == loser.key_id
