"""Redis Cluster slot maps: parsing ``CLUSTER SLOTS`` and agreeing when nodes disagree (no sockets)."""

from __future__ import annotations

from tidings.server.redis_io._slots import SLOTS, agree, parse_slot_map

A, B, C = "redis://a:1", "redis://b:2", "redis://c:3"


def _address(host: str, port: int) -> str:
    return f"redis://{host or 'asked'}:{port}"


def test_parse_slot_map_names_each_range_master_and_every_node() -> None:
    # Arrange: two ranges; the second names its master with an empty host (the node asked)
    reply = [
        [0, 8191, [b"a", 1, b"id-a"], [b"r", 4, b"id-r"]],
        [8192, SLOTS - 1, [b"", 2, b"id-b"]],
    ]

    # Act
    owners, nodes = parse_slot_map(reply, _address)

    # Assert
    assert (owners[0], owners[8191], owners[8192], owners[SLOTS - 1]) == (A, A, "redis://asked:2", "redis://asked:2")
    assert nodes == [A, "redis://r:4", "redis://asked:2"]


def test_parse_slot_map_leaves_uncovered_slots_empty() -> None:
    owners, _ = parse_slot_map([[0, 99, [b"a", 1, b"id-a"]]], _address)

    assert owners[99] == A
    assert owners[100] == ""


def test_agree_follows_what_most_nodes_say_slot_by_slot() -> None:
    # Arrange: one node has not heard yet that B took slots 0-99 over from A
    told = [B] * 100 + [C] * (SLOTS - 100)
    stale = [A] * 100 + [C] * (SLOTS - 100)

    # Act
    owners = agree([stale, told, told])

    # Assert
    assert owners == told


def test_agree_keeps_a_slot_some_node_serves_and_a_tie_goes_to_the_first_map() -> None:
    first = [A] * SLOTS
    second = [""] * 10 + [B] * (SLOTS - 10)

    owners = agree([first, second])

    assert owners == [A] * SLOTS
    assert agree([second]) == second
