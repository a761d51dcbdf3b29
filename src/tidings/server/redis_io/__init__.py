"""Redis plumbing shared by the Redis engine and the Redis store: pipelined links, the shard map of a Redis
(Cluster) deployment with its slot map, and the pub/sub connection per shard.

A leaf beneath both: it imports neither `tidings.server.engine` nor `tidings.server.store`, and they import it
through this package, never each other's private modules.
"""

from tidings.server.redis_io._link import Arg, RedisLink, Reply, as_list, as_text, pack_arguments, pack_command
from tidings.server.redis_io._pubsub import ChannelSubscriber
from tidings.server.redis_io._shards import Shards, connection_factory
from tidings.server.redis_io._slots import SLOTS, agree, parse_slot_map

__all__ = [
    "SLOTS",
    "Arg",
    "ChannelSubscriber",
    "RedisLink",
    "Reply",
    "Shards",
    "agree",
    "as_list",
    "as_text",
    "connection_factory",
    "pack_arguments",
    "pack_command",
    "parse_slot_map",
]
