"""``make bench-check`` (bench/check.py) reads the ratios each benchmark records and flags those that moved the
wrong way past the tolerance."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).parents[2] / "bench"

SECTION = """<!-- bench:demo:start -->
## Demo

| metric | ceiling | tidings | target |
| --- | ---: | ---: | --- |
| server CPU per 1,000 deliveries (ms) | 18.5 | 3.8 (0.20x) | ≤ 0.33x — pass |
| deliveries/s, fan-out@100 | 42,478 | 104,438 (2.46x) | ≥ 2x — pass |
| load generator CPU during fan-out@100 (cores) | 1.08 | 1.52 (1.41x) |  |

| deliveries/s to a receiver | tidings | floor | ratio | floor is |
| --- | ---: | ---: | ---: | --- |
| 1 webhook | 1,056 | 1,262 | **0.84x** | 1 httpx loop |

- Server CPU per publish, gRPC-web / HTTP API: **1.26x** (target at most 1.5x).
<!-- bench:demo:end -->
"""


@pytest.fixture
def check(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCH))
    sys.modules.pop("check", None)
    return importlib.import_module("check")


def test_reads_measured_ratios_and_leaves_targets_and_context_out(check: ModuleType) -> None:
    found = {ratio.key: (ratio.value, ratio.lower_is_better) for ratio in check.ratios(check.section(SECTION, "demo"))}

    assert found == {
        "metric: server CPU per 1,000 deliveries (ms) [tidings]": (0.20, True),
        "metric: deliveries/s, fan-out@100 [tidings]": (2.46, False),
        "deliveries/s to a receiver: 1 webhook [ratio]": (0.84, False),
        "Server CPU per publish, gRPC-web / HTTP API": (1.26, True),
    }


def test_flags_only_moves_the_wrong_way_past_the_tolerance(check: ModuleType) -> None:
    recorded = check.ratios(check.section(SECTION, "demo"))
    measured = check.ratios(
        check.section(
            SECTION.replace("(0.20x)", "(0.24x)")  # CPU +20%: worse
            .replace("(2.46x)", "(3.10x)")  # rate up: better, not flagged
            .replace("**0.84x**", "**0.80x**")  # rate -5%: within 15%
            .replace("**1.26x**", "**1.00x**"),  # CPU down: better
            "demo",
        )
    )

    failures = check.regressions(recorded, measured, 0.15)

    assert failures == ["metric: server CPU per 1,000 deliveries (ms) [tidings]: recorded 0.2x, now 0.24x (+20%)"]


def test_every_checked_benchmark_has_ratios_recorded(check: ModuleType) -> None:
    recorded = check.RECORDED.read_text()

    assert {name: bool(check.ratios(check.section(recorded, name))) for name in check.BENCHMARKS} == dict.fromkeys(
        check.BENCHMARKS, True
    )
