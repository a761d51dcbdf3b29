"""bench/scale.py's shapes and its subscriber processes' tally (bench/_scale_subscribers.py), without sockets."""

from __future__ import annotations

import asyncio
import importlib
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).parents[2] / "bench"
HEARTBEAT, ITEM = b"\x1a\x00", b"\x0a\x05hello"


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> dict[str, ModuleType]:
    monkeypatch.syspath_prepend(str(BENCH))
    for name in ("scale", "_scale_subscribers"):
        sys.modules.pop(name, None)
    return {name: importlib.import_module(name) for name in ("scale", "_scale_subscribers")}


def test_tally_reports_opened_once_every_stream_had_a_heartbeat(bench: dict[str, ModuleType]) -> None:
    lines: list[str] = []
    tally = bench["_scale_subscribers"].Tally(3, lines.append)

    for tag in (0, 1, 0, 2, 1):
        tally.on_message(tag, HEARTBEAT)

    assert [line.split()[0] for line in lines] == ["opened"]
    assert (tally.opened, tally.heartbeats) == (3, 5)


def test_tally_counts_streams_heard_since_listen(bench: dict[str, ModuleType]) -> None:
    tally = bench["_scale_subscribers"].Tally(3, lambda line: None)
    for tag in range(3):
        tally.on_message(tag, HEARTBEAT)

    tally.listen()
    for tag in (2, 2, 0):
        tally.on_message(tag, HEARTBEAT)

    assert (tally.heard, tally.opened) == (2, 3)


def test_tally_reports_delivered_on_the_last_item_and_the_first_end_only(bench: dict[str, ModuleType]) -> None:
    lines: list[str] = []
    tally = bench["_scale_subscribers"].Tally(2, lines.append)

    tally.on_message(0, ITEM)
    tally.on_message(1, ITEM)
    tally.on_message(1, b"\x12discontinuity")
    tally.on_end(0, 14, "server shutting down")
    tally.on_end(1, -1, "connection closed")

    assert [line.split()[0] for line in lines] == ["delivered", "ended"]
    assert lines[1] == "ended 14: server shutting down"
    assert tally.counts() | {"end_reasons": None} == {
        "heartbeats": 0,
        "items": 2,
        "other": 1,
        "opened": 0,
        "heard": 0,
        "ended": 2,
        "end_reasons": None,
    }


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], (100_000, 500, 100, 1, 1)),
        (["--quick"], (10_000, 50, 100, 1, 1)),
        (["--machine"], (1_000_000, 5_000, 1_000, 2, 2)),
        (["--machine", "--quick", "--client-processes", "1"], (20_000, 100, 1_000, 2, 1)),
    ],
    ids=["process", "process-quick", "machine", "machine-quick-one-client"],
)
def test_shape_of_each_step(bench: dict[str, ModuleType], argv: list[str], expected: tuple[int, ...]) -> None:
    scale = bench["scale"]

    shape = scale.shape_of(scale.parse_args(argv))

    assert (shape.subscriptions, shape.connections, shape.topics, shape.workers, shape.client_processes) == expected


def test_child_commands_split_streams_and_connections_evenly(bench: dict[str, ModuleType]) -> None:
    scale = bench["scale"]
    shape = scale.shape_of(scale.parse_args(["--machine", "--subscriptions", "1001", "--connections", "11"]))

    commands = scale.child_commands(8080, shape)

    def option(command: list[str], name: str) -> int:
        return int(command[command.index(name) + 1])

    assert [(option(c, "--first"), option(c, "--count"), option(c, "--connections")) for c in commands] == [
        (0, 501, 6),
        (501, 500, 5),
    ]


def test_machine_server_command_raises_the_limits_that_1m_needs(bench: dict[str, ModuleType]) -> None:
    scale = bench["scale"]
    shape = scale.shape_of(scale.parse_args(["--machine"]))

    command: list[str] = scale.server_command(8080, "/tmp/data", shape, "redis://127.0.0.1:6379")

    def option(name: str) -> str:
        return command[command.index(name) + 1]

    assert option("--workers") == "2"
    assert option("--redis-url") == "redis://127.0.0.1:6379"
    assert int(option("--max-subscriptions-per-cache")) > 1_000_000
    assert int(option("--max-connections")) > 5_000
    assert int(option("--max-connections-per-address")) > 5_000


def test_tally_wakes_the_opener_once_enough_streams_opened(bench: dict[str, ModuleType]) -> None:
    tally = bench["_scale_subscribers"].Tally(4, lambda line: None)

    async def open_with_window() -> list[int]:
        opened_when_woken: list[int] = []
        waiter = asyncio.create_task(tally.opened_at_least(3))
        for tag in range(4):
            await asyncio.sleep(0)
            if waiter.done() and not opened_when_woken:
                opened_when_woken.append(tally.opened)
            tally.on_message(tag, HEARTBEAT)
        await waiter
        return opened_when_woken

    assert asyncio.run(open_with_window()) == [3]
