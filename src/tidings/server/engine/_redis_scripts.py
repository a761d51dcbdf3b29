"""The Redis engine's keys, Lua scripts and live-message encoding.

Per topic, one hash tag ``{<cache length>:<cache>:<topic>}`` puts every key and the channel in one cluster slot:

- ``<prefix>{tag}:m`` meta hash: ``p`` page, ``s`` last sequence number, ``b`` retained bytes. It expires after
  the idle TTL: a topic whose meta is gone is retired, and its next use starts a new page.
- ``<prefix>{tag}:s`` stream of retained messages, entry id ``<seq>-0``, fields ``v`` value, ``k`` kind
  (``t`` text, ``b`` binary), ``i`` publisher id; same TTL as the meta.
- ``<prefix>{tag}:p`` the last page the topic had, kept for ``PAGE_MEMORY_MS`` so that a new instance gets a
  greater page even when the pages offered by nodes are not (clock skew).
- ``<prefix>{tag}:c`` the channel every publish is announced on: ``<seq>:<page>:<kind><id length>:<id><value>``.

Pages are decimal strings in Redis; Lua compares them as numbers, exact below 2**53 (pages are wall-clock
microseconds, about 1.8e15 today).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final

from redis.crc import key_slot

PAGE_MEMORY_MS: Final = 30 * 24 * 3600 * 1000

# KEYS: meta, stream, last page. ARGV: offered page, idle TTL ms.
_OPEN_INSTANCE = """
local function open_instance(meta, stream, last_page_key, offered, ttl)
  local page = redis.call('HGET', meta, 'p')
  if page then return page end
  local last = tonumber(redis.call('GET', last_page_key) or '0')
  page = offered
  if tonumber(offered) <= last then page = string.format('%.0f', last + 1) end
  redis.call('DEL', stream)
  redis.call('HSET', meta, 'p', page, 's', 0, 'b', 0)
  redis.call('PEXPIRE', meta, ttl)
  redis.call('SET', last_page_key, page, 'PX', PAGE_MEMORY_MS)
  return page
end
"""

# KEYS: meta, stream, last page. ARGV: offered page, idle TTL ms, value, kind, publisher id, max count,
# max bytes, channel, publish command (PUBLISH or SPUBLISH). Returns {page, seq}.
PUBLISH: Final = (
    f"local PAGE_MEMORY_MS = {PAGE_MEMORY_MS}\n"
    + _OPEN_INSTANCE
    + """
local meta, stream = KEYS[1], KEYS[2]
local ttl, value, kind, publisher = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local max_count, max_bytes = tonumber(ARGV[6]), tonumber(ARGV[7])
local page = open_instance(meta, stream, KEYS[3], ARGV[1], ttl)
local seq = redis.call('HINCRBY', meta, 's', 1)
redis.call('XADD', stream, seq .. '-0', 'v', value, 'k', kind, 'i', publisher)
local bytes = redis.call('HINCRBY', meta, 'b', #value)
local count = redis.call('XLEN', stream)
local evicted = 0
while (count > max_count or bytes > max_bytes) and count > 1 do
  local oldest = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)[1]
  redis.call('XDEL', stream, oldest[1])
  bytes = bytes - #oldest[2][2]
  evicted = evicted + #oldest[2][2]
  count = count - 1
end
if evicted > 0 then redis.call('HINCRBY', meta, 'b', -evicted) end
redis.call('PEXPIRE', meta, ttl)
redis.call('PEXPIRE', stream, ttl)
redis.call(ARGV[9], ARGV[8], seq .. ':' .. page .. ':' .. kind .. #publisher .. ':' .. publisher .. value)
return {page, seq}
"""
)

# KEYS: meta, stream, last page. ARGV: offered page, idle TTL ms, first sequence number wanted.
# Returns {page, last seq, {{id, {field, value, ...}}, ...}}: the instance (opened if there is none, as a first
# subscribe does) and what it retains from the wanted sequence number on. Also keeps the instance alive.
READ: Final = (
    f"local PAGE_MEMORY_MS = {PAGE_MEMORY_MS}\n"
    + _OPEN_INSTANCE
    + """
local meta, stream, ttl = KEYS[1], KEYS[2], ARGV[2]
local page = open_instance(meta, stream, KEYS[3], ARGV[1], ttl)
redis.call('PEXPIRE', meta, ttl)
redis.call('PEXPIRE', stream, ttl)
local last = redis.call('HGET', meta, 's')
return {page, last, redis.call('XRANGE', stream, ARGV[3] .. '-0', '+')}
"""
)


# KEYS: meta. ARGV: page, the last sequence number a node delivered in it. Raises the topic's counter to that number
# (same page only), so that new messages do not reuse numbers already delivered: after a failover to a replica that
# had not received the last messages, Redis's counter is behind what subscribers saw. Returns 1 if it was behind.
FENCE: Final = """
if redis.call('HGET', KEYS[1], 'p') ~= ARGV[1] then return 0 end
if tonumber(redis.call('HGET', KEYS[1], 's')) >= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 's', ARGV[2])
return 1
"""


def script_sha(script: str) -> str:
    """The SHA1 EVALSHA names ``script`` by."""
    return hashlib.sha1(script.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class TopicKeys:
    """The Redis names of one topic."""

    meta: bytes
    stream: bytes
    last_page: bytes
    channel: bytes
    slot: int  # the cluster slot of every one of them

    @classmethod
    def of(cls, prefix: str, cache_name: str, topic_name: str) -> TopicKeys:
        """The keys of ``topic_name`` in ``cache_name``; the length prefix keeps (a:b, c) apart from (a, b:c)."""
        cache = cache_name.encode()
        base = prefix.encode() + b"{%d:" % len(cache) + cache + b":" + topic_name.encode() + b"}:"
        return cls(base + b"m", base + b"s", base + b"p", base + b"c", key_slot(base))


def decode_live(data: bytes) -> tuple[int, int, str | bytes, str, int]:
    """(page, seq, value, publisher id, value size) of a channel message written by the publish script."""
    seq_end = data.index(b":")
    page_end = data.index(b":", seq_end + 1)
    kind = data[page_end + 1]
    length_end = data.index(b":", page_end + 2)
    id_start = length_end + 1
    value_start = id_start + int(data[page_end + 2 : length_end])
    raw = data[value_start:]
    value: str | bytes = raw.decode() if kind == 0x74 else raw  # b"t"
    page, seq = int(data[seq_end + 1 : page_end]), int(data[:seq_end])
    return page, seq, value, data[id_start:value_start].decode(), len(raw)


def decode_entry(fields: list[bytes]) -> tuple[str | bytes, str]:
    """(value, publisher id) of a stream entry's field list ``[b"v", value, b"k", kind, b"i", id]``."""
    raw = fields[1]
    return (raw.decode() if fields[3] == b"t" else raw), fields[5].decode()


def entry_sequence_number(entry_id: bytes) -> int:
    """The sequence number of a stream entry id ``<seq>-0``."""
    return int(entry_id[: entry_id.index(b"-")])
