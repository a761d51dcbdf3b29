"""Redis Cluster slot maps: read from ``CLUSTER SLOTS`` replies, and agreed on when the nodes disagree.

Right after a failover or a resharding, nodes can tell different stories for a while: one that has not heard
of the change yet, or an old master restarting with its old configuration, still names the old owner. Asking
every node and taking, slot by slot, the owner most of them name follows the cluster as soon as most of it knows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Final

from tidings.server.redis_io._link import Reply, as_list, as_text

SLOTS: Final = 16384


def parse_slot_map(reply: Sequence[Reply], address_of: Callable[[str, int], str]) -> tuple[list[str], list[str]]:
    """(slot -> master address, "" where none; every node the reply names, masters and replicas) of a
    ``CLUSTER SLOTS`` reply. ``address_of(host, port)`` makes a node's address ("" as host: the node asked)."""
    owners = [""] * SLOTS
    nodes: list[str] = []
    for entry in reply:
        first_slot, last_slot, *named = as_list(entry)
        addresses = []
        for node in named:
            host, port = as_list(node)[:2]
            addresses.append(address_of(as_text(host), int(as_text(port))))
        nodes.extend(address for address in addresses if address not in nodes)
        first, last = int(as_text(first_slot)), int(as_text(last_slot))
        owners[first : last + 1] = [addresses[0]] * (last - first + 1)
    return owners, nodes


def agree(maps: Sequence[Sequence[str]]) -> list[str]:
    """Slot by slot, the owner most of ``maps`` name ("" where none names one; a tie goes to the first map)."""
    distinct = Counter(tuple(found) for found in maps)
    if len(distinct) == 1:
        return list(maps[0])
    owners = []
    for slot in range(SLOTS):
        votes: Counter[str] = Counter()
        for found, weight in distinct.items():
            if found[slot]:
                votes[found[slot]] += weight
        owners.append(votes.most_common(1)[0][0] if votes else "")
    return owners
