"""The Redis store: caches, API keys, the page floor and the token signing secret, shared by every node.

Keys (under ``<prefix>{store}:``, the prefix ``tidings:`` by default): ``caches`` hash name -> creation time;
``caches-version`` (a counter every cache creation and deletion raises, so other nodes notice);
``api-keys`` hash id -> JSON; ``api-keys-revoked`` hash id -> revocation time; ``tokens-revoked`` hash token
id -> revocation time; ``api-keys-version`` counter;
``page-floor``; ``secret``; ``deployment`` (the deployment's id, which names its admin key file) and
``admin-key`` (the id of the deployment's generated admin key, in ``api-keys``); ``webhooks:<cache>`` hash
webhook name -> JSON (topic, url, secret) and ``webhooks-version`` (a counter every webhook change raises, so
other nodes notice); ``webhook-leases:<cache>``
hash webhook name -> ``<holder> <expiry ms>`` (the node delivering it) and ``webhook-cursors:<cache>`` hash
webhook name -> ``<page> <next sequence number>`` (where its deliveries stand). Multi-key changes are Lua
scripts (atomic; the connection is pipelined, so no MULTI).
"""

from __future__ import annotations

import json
import secrets
import time

from redis.exceptions import ResponseError

from tidings.server.auth import MAX_TOKEN_LIFETIME, ApiKey, grants_from_json, grants_to_json
from tidings.server.core import Unavailable
from tidings.server.redis_io import Arg, Shards, as_list, as_text
from tidings.server.webhooks import Webhook

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
# KEYS: keys, revoked, version, admin key. ARGV: id, JSON. Stores the key and makes it the deployment's admin
# key, unless the deployment's is usable (stored, not revoked: generated admin keys never expire); returns the
# id of the deployment's admin key.
_CLAIM_ADMIN_KEY = """
local current = redis.call('GET', KEYS[4])
if current and redis.call('HEXISTS', KEYS[1], current) == 1 and redis.call('HEXISTS', KEYS[2], current) == 0 then
  return current
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SET', KEYS[4], ARGV[1])
redis.call('INCR', KEYS[3])
return ARGV[1]
"""
# KEYS: floor. ARGV: page. Keeps the greatest floor any node recorded.
_RAISE_FLOOR = """
local current = redis.call('GET', KEYS[1])
if current and tonumber(current) >= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""

# KEYS: caches, caches version. ARGV: cache, creation time.
_CREATE_CACHE = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('INCR', KEYS[2])
return 1
"""
# KEYS: caches, webhooks, leases, cursors (of the cache), webhooks version, caches version. ARGV: cache. Its
# webhooks go with it.
_DELETE_CACHE = """
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
if redis.call('DEL', KEYS[2]) == 1 then redis.call('INCR', KEYS[5]) end
redis.call('DEL', KEYS[3], KEYS[4])
redis.call('INCR', KEYS[6])
return 1
"""
# KEYS: caches, webhooks of the cache, webhooks version, cursors of the cache. ARGV: cache, name, topic, url,
# new secret. Returns the secret stored (the existing one on replace), or false when the cache does not exist.
# A new topic starts over: its cursor is dropped.
_PUT_WEBHOOK = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return false end
local secret = ARGV[5]
local current = redis.call('HGET', KEYS[2], ARGV[2])
if current then
  local stored = cjson.decode(current)
  secret = stored['secret']
  if stored['topic'] ~= ARGV[3] then redis.call('HDEL', KEYS[4], ARGV[2]) end
end
redis.call('HSET', KEYS[2], ARGV[2], cjson.encode({topic = ARGV[3], url = ARGV[4], secret = secret}))
redis.call('INCR', KEYS[3])
return secret
"""
# KEYS: leases of the cache. ARGV: name, holder, ttl ms. Takes or extends the lease unless another holder has it.
_TAKE_LEASE = """
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current then
  local holder, expiry = string.match(current, '^(%S+) (%d+)$')
  if holder ~= ARGV[2] and tonumber(expiry) > now then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ' ' .. (now + tonumber(ARGV[3])))
return 1
"""
# KEYS: leases of the cache. ARGV: name, holder.
_DROP_LEASE = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current and string.match(current, '^(%S+) ') == ARGV[2] then redis.call('HDEL', KEYS[1], ARGV[1]) end
return 1
"""
# KEYS: leases, cursors (of the cache). ARGV: name, holder, cursor. Only the lease holder moves the cursor.
_SAVE_CURSOR = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
if not current or string.match(current, '^(%S+) ') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return 1
"""
# KEYS: webhooks of the cache, webhooks version. ARGV: name, new secret.
_SET_WEBHOOK_SECRET = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
if not current then return 0 end
local webhook = cjson.decode(current)
webhook['secret'] = ARGV[2]
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(webhook))
redis.call('INCR', KEYS[2])
return 1
"""
# KEYS: webhooks, version, leases, cursors. ARGV: name.
_DELETE_WEBHOOK = """
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('INCR', KEYS[2])
return 1
"""


class RedisStore:
    """Caches and server metadata in Redis; every node using the same Redis sees the same."""

    shared = True

    def __init__(self, shards: Shards, *, prefix: str = "tidings:") -> None:
        """The store on ``shards``, connections that their owner starts and closes (the Redis backend's); `open`
        makes a store that owns its own."""
        self._shards = shards
        self._prefix = prefix.encode()
        self._owns_shards = False  # `close` closes the shards

    @classmethod
    async def open(cls, url: str, *, cluster: bool = False, prefix: str = "tidings:") -> RedisStore:
        """Connect to ``url`` (any node of a Redis Cluster with ``cluster``) with connections of the store's own;
        raises `Unavailable` when Redis cannot be reached."""
        shards = Shards(url, cluster=cluster)
        await shards.start()
        store = cls(shards, prefix=prefix)
        store._owns_shards = True
        return store

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

    async def cache_exists(self, cache_name: str) -> bool:
        return await self._call(b"HEXISTS", self._key(b"caches"), cache_name) == 1

    async def caches_version(self) -> int:
        version = await self._call(b"GET", self._key(b"caches-version"))
        return 0 if version is None else int(as_text(version))

    async def create_cache(self, cache_name: str) -> bool:
        created = await self._call(
            b"EVAL", _CREATE_CACHE, 2, self._key(b"caches"), self._key(b"caches-version"), cache_name, time.time()
        )
        return created == 1

    async def delete_cache(self, cache_name: str) -> bool:
        deleted = await self._call(
            b"EVAL", _DELETE_CACHE, 6, self._key(b"caches"), self._webhooks_key(cache_name),
            self._webhooks_key(cache_name, b"webhook-leases:"), self._webhooks_key(cache_name, b"webhook-cursors:"),
            self._key(b"webhooks-version"), self._key(b"caches-version"), cache_name,
        )  # fmt: skip
        return deleted == 1

    def _webhooks_key(self, cache_name: str, kind: bytes = b"webhooks:") -> bytes:
        return self._key(kind + cache_name.encode())

    async def list_webhooks(self) -> list[Webhook]:
        webhooks = []
        for cache_name in await self.list_caches():
            stored = as_list(await self._call(b"HGETALL", self._webhooks_key(cache_name)))
            for i in range(0, len(stored), 2):
                fields = json.loads(as_text(stored[i + 1]))
                webhooks.append(
                    Webhook(cache_name, as_text(stored[i]), fields["topic"], fields["url"], fields["secret"])
                )
        return sorted(webhooks, key=lambda webhook: (webhook.cache_name, webhook.name))

    async def put_webhook(self, webhook: Webhook) -> Webhook | None:
        secret = await self._call(
            b"EVAL", _PUT_WEBHOOK, 4, self._key(b"caches"), self._webhooks_key(webhook.cache_name),
            self._key(b"webhooks-version"), self._webhooks_key(webhook.cache_name, b"webhook-cursors:"),
            webhook.cache_name, webhook.name, webhook.topic_name, webhook.url, webhook.secret,
        )  # fmt: skip
        if secret is None:
            return None
        return Webhook(webhook.cache_name, webhook.name, webhook.topic_name, webhook.url, as_text(secret))

    async def set_webhook_secret(self, cache_name: str, name: str, secret: str) -> bool:
        changed = await self._call(
            b"EVAL", _SET_WEBHOOK_SECRET, 2, self._webhooks_key(cache_name), self._key(b"webhooks-version"),
            name, secret,
        )  # fmt: skip
        return changed == 1

    async def delete_webhook(self, cache_name: str, name: str) -> bool:
        deleted = await self._call(
            b"EVAL", _DELETE_WEBHOOK, 4, self._webhooks_key(cache_name), self._key(b"webhooks-version"),
            self._webhooks_key(cache_name, b"webhook-leases:"), self._webhooks_key(cache_name, b"webhook-cursors:"),
            name,
        )  # fmt: skip
        return deleted == 1

    async def take_webhook_lease(self, cache_name: str, name: str, holder: str, ttl: float) -> bool:
        """Take (or, for its holder, extend) the lease to deliver a webhook for ``ttl`` seconds; False while
        another holder's lease runs."""
        taken = await self._call(
            b"EVAL", _TAKE_LEASE, 1, self._webhooks_key(cache_name, b"webhook-leases:"), name, holder,
            max(1, round(ttl * 1000)),
        )  # fmt: skip
        return taken == 1

    async def drop_webhook_lease(self, cache_name: str, name: str, holder: str) -> None:
        """Give the lease up (if ``holder`` has it), so another node takes over at once."""
        await self._call(b"EVAL", _DROP_LEASE, 1, self._webhooks_key(cache_name, b"webhook-leases:"), name, holder)

    async def load_webhook_cursor(self, cache_name: str, name: str) -> tuple[int, int] | None:
        """Where the webhook's deliveries stand: (sequence page, next sequence number), None if never saved."""
        cursor = await self._call(b"HGET", self._webhooks_key(cache_name, b"webhook-cursors:"), name)
        if cursor is None:
            return None
        page, next_number = as_text(cursor).split()
        return int(page), int(next_number)

    async def save_webhook_cursor(
        self, cache_name: str, name: str, holder: str, sequence_page: int, next_sequence_number: int
    ) -> bool:
        """Record where deliveries stand; only the lease ``holder`` may (False otherwise)."""
        saved = await self._call(
            b"EVAL", _SAVE_CURSOR, 2, self._webhooks_key(cache_name, b"webhook-leases:"),
            self._webhooks_key(cache_name, b"webhook-cursors:"), name, holder,
            f"{sequence_page} {next_sequence_number}",
        )  # fmt: skip
        return saved == 1

    async def webhooks_version(self) -> int:
        """A number every webhook change (on any node) raises: `list_webhooks` again when it moved."""
        version = await self._call(b"GET", self._key(b"webhooks-version"))
        return 0 if version is None else int(as_text(version))

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
        await self._call(
            b"EVAL", _ADD, 2, self._key(b"api-keys"), self._key(b"api-keys-version"), key.key_id, _key_json(key)
        )

    async def deployment_id(self) -> str:
        """A short id of the servers sharing this store (8 hex digits), made by the first that asks."""
        await self._call(b"SET", self._key(b"deployment"), secrets.token_hex(4), b"NX")
        return as_text(await self._call(b"GET", self._key(b"deployment")))

    async def claim_admin_key(self, key: ApiKey) -> str:
        """Store ``key`` as the deployment's generated admin key, unless it has a usable one (atomic: of servers
        starting together, one generates it); returns the id of the deployment's admin key."""
        holder = await self._call(
            b"EVAL", _CLAIM_ADMIN_KEY, 4, self._key(b"api-keys"), self._key(b"api-keys-revoked"),
            self._key(b"api-keys-version"), self._key(b"admin-key"), key.key_id, _key_json(key),
        )  # fmt: skip
        return as_text(holder)

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
        if self._owns_shards:
            await self._shards.close()


def _key_json(key: ApiKey) -> str:
    """What ``api-keys`` holds for ``key`` (its id is the field)."""
    return json.dumps(
        {
            "hash": key.secret_hash,
            "super_user": key.super_user,
            "grants": grants_to_json(key.grants),
            "description": key.description,
            "created_at": key.created_at,
            "expires_at": key.expires_at,
        }
    )
