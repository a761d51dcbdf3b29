"""The Redis store: caches, API keys, the page floor and the token signing secret, shared by every node.

Keys (under ``<prefix>{store}:``, the prefix ``tidings:`` by default): ``caches`` hash name -> creation time;
``api-keys`` hash id -> JSON; ``api-keys-revoked`` hash id -> revocation time; ``tokens-revoked`` hash token
id -> revocation time; ``api-keys-version`` counter;
``page-floor``; ``secret``. Multi-key changes are Lua scripts (atomic; the connection is pipelined, so no MULTI).
"""

from __future__ import annotations

import json
import secrets
import time

from redis.exceptions import ResponseError

from tidings.server.auth import MAX_TOKEN_LIFETIME, ApiKey, grants_from_json, grants_to_json
from tidings.server.core import Unavailable
from tidings.server.engine._redis_link import Arg, as_list, as_text
from tidings.server.engine._redis_shards import Shards

# KEYS: keys, revoked, version. ARGV: id, at.
_REVOKE = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('INCR', KEYS[3])
return 1
"""
# KEYS: keys, version. ARGV: id, JSON.
_ADD = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('INCR', KEYS[2])
return 1
"""
# KEYS: revoked tokens, version. ARGV: token id, at, forget before. Keeps the latest revocation of an id and
# drops those older than any token they cover (a token lives at most MAX_TOKEN_LIFETIME).
_REVOKE_TOKEN = """
local entries = redis.call('HGETALL', KEYS[1])
for i = 1, #entries, 2 do
  if tonumber(entries[i + 1]) < tonumber(ARGV[3]) then redis.call('HDEL', KEYS[1], entries[i]) end
end
local current = redis.call('HGET', KEYS[1], ARGV[1])
if not current or tonumber(current) < tonumber(ARGV[2]) then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
redis.call('INCR', KEYS[2])
return 1
"""
# KEYS: floor. ARGV: page. Keeps the greatest floor any node recorded.
_RAISE_FLOOR = """
local current = redis.call('GET', KEYS[1])
if current and tonumber(current) >= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""


class RedisStore:
    """Caches and server metadata in Redis; every node using the same Redis sees the same."""

    shared = True

    def __init__(self, shards: Shards, *, prefix: str = "tidings:") -> None:
        self._shards = shards
        self._prefix = prefix.encode()

    @classmethod
    async def open(cls, url: str, *, cluster: bool = False, prefix: str = "tidings:") -> RedisStore:
        """Connect to ``url`` (any node of a Redis Cluster with ``cluster``); raises `Unavailable` when Redis
        cannot be reached."""
        shards = Shards(url, cluster=cluster)
        await shards.start()
        return cls(shards, prefix=prefix)

    def _key(self, name: bytes) -> bytes:
        # One hash tag: in a Redis Cluster every store key is in one slot, so the scripts may touch several.
        return self._prefix + b"{store}:" + name

    async def _call(self, *args: Arg) -> object:
        """A command whose first key is ``args[1]`` (every store key is in one slot)."""
        try:
            return await self._shards.call(self._key(b""), *args)
        except ResponseError as error:
            raise Unavailable(f"Redis refused the operation: {error}") from None

    async def list_caches(self) -> list[str]:
        return sorted(as_text(name) for name in as_list(await self._call(b"HKEYS", self._key(b"caches"))))

    async def create_cache(self, cache_name: str) -> bool:
        return await self._call(b"HSETNX", self._key(b"caches"), cache_name, time.time()) == 1

    async def delete_cache(self, cache_name: str) -> bool:
        return await self._call(b"HDEL", self._key(b"caches"), cache_name) == 1

    async def load_page_floor(self) -> int:
        floor = await self._call(b"GET", self._key(b"page-floor"))
        return 0 if floor is None else int(as_text(floor))

    async def save_page_floor(self, sequence_page: int) -> None:
        await self._call(b"EVAL", _RAISE_FLOOR, 1, self._key(b"page-floor"), sequence_page)

    async def list_api_keys(self) -> list[ApiKey]:
        stored = as_list(await self._call(b"HGETALL", self._key(b"api-keys")))
        revoked = as_list(await self._call(b"HGETALL", self._key(b"api-keys-revoked")))
        revoked_at = {as_text(revoked[i]): float(as_text(revoked[i + 1])) for i in range(0, len(revoked), 2)}
        keys = []
        for i in range(0, len(stored), 2):
            key_id, fields = as_text(stored[i]), json.loads(as_text(stored[i + 1]))
            keys.append(
                ApiKey(
                    key_id=key_id,
                    secret_hash=fields["hash"],
                    super_user=fields["super_user"],
                    grants=grants_from_json(fields["grants"]),
                    description=fields["description"],
                    created_at=fields["created_at"],
                    expires_at=fields["expires_at"],
                    revoked_at=revoked_at.get(key_id),
                )
            )
        return sorted(keys, key=lambda key: (key.created_at, key.key_id))

    async def add_api_key(self, key: ApiKey) -> None:
        fields = {
            "hash": key.secret_hash,
            "super_user": key.super_user,
            "grants": grants_to_json(key.grants),
            "description": key.description,
            "created_at": key.created_at,
            "expires_at": key.expires_at,
        }
        await self._call(
            b"EVAL", _ADD, 2, self._key(b"api-keys"), self._key(b"api-keys-version"), key.key_id, json.dumps(fields)
        )

    async def revoke_api_key(self, key_id: str, at: float) -> bool:
        revoked = await self._call(
            b"EVAL", _REVOKE, 3, self._key(b"api-keys"), self._key(b"api-keys-revoked"),
            self._key(b"api-keys-version"), key_id, at,
        )  # fmt: skip
        return revoked == 1

    async def list_revoked_tokens(self) -> dict[str, float]:
        entries = as_list(await self._call(b"HGETALL", self._key(b"tokens-revoked")))
        return {as_text(entries[i]): float(as_text(entries[i + 1])) for i in range(0, len(entries), 2)}

    async def revoke_token(self, token_id: str, at: float) -> None:
        await self._call(
            b"EVAL", _REVOKE_TOKEN, 2, self._key(b"tokens-revoked"), self._key(b"api-keys-version"),
            token_id, at, at - MAX_TOKEN_LIFETIME,
        )  # fmt: skip

    async def api_keys_version(self) -> int:
        version = await self._call(b"GET", self._key(b"api-keys-version"))
        return 0 if version is None else int(as_text(version))

    async def load_or_create_secret(self) -> bytes:
        """The token signing secret every node shares (created by the first node that asks)."""
        await self._call(b"SET", self._key(b"secret"), secrets.token_hex(32), b"NX")
        return as_text(await self._call(b"GET", self._key(b"secret"))).encode()

    async def close(self) -> None:
        await self._shards.close()
