"""``make bench-check``: each benchmark's quick mode against the ratios recorded in docs/performance.md.

Every benchmark compares tidings with a baseline measured in the same run and writes ratios into its section of
docs/performance.md (between ``<!-- bench:NAME:start/end -->``). This runs each one with ``--quick``, writing
into a scratch copy of that page, and compares the fresh ratios with the recorded ones, never absolute times. A
ratio that moved the wrong way (a CPU, latency or memory ratio up, a rate ratio down) by more than the tolerance
fails the check. Quick runs are short and noisy, so a benchmark with a failing ratio is run once more, and the
ratio fails only when both runs are past the tolerance.

Usage::

    python bench/check.py                     # every benchmark (a few minutes), tolerance 15%
    python bench/check.py --only h2 http      # some of them
    python bench/check.py --tolerance 0.25    # a wider tolerance
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from _report import markers

ROOT = Path(__file__).resolve().parents[1]
RECORDED = ROOT / "docs" / "performance.md"

# Section name -> the benchmark that writes it. (The soak and reliability runs take minutes by design, and they
# and bench/scale.py record no ratio to a baseline; they are not checked.)
BENCHMARKS: dict[str, str] = {
    "core": "run.py",
    "auth": "auth.py",
    "sdk": "sdk.py",
    "http": "http_bench.py",
    "grpc-web": "grpc_web.py",
    "redis": "redis_bench.py",
    "webhooks": "webhooks.py",
    "h2": "transports.py",
}
QUICK = ["--quick"]
# Where a quick run differs from the recorded one by more than noise, a short run of the recorded shape: the
# webhooks' 300 quick messages leave one webhook's rate below its full run's (3.6x the httpx loop against 4.4x,
# twice), and the core and h2 quick runs open 500 idle subscriptions instead of 5,000 and 10,000, where the
# ceiling's fixed memory weighs more (RSS ratios 1.37x and 0.30x against 1.03x and 0.22x). The h2 comparison's
# publish and latency ratios need its full 10 s scenarios (2 s ones read 0.66x the ceiling's publish CPU, twice,
# where the full run of the same code read 0.50x): one round, as recorded (about 3 minutes).
QUICK_ARGUMENTS: dict[str, list[str]] = {
    "webhooks": ["--rounds", "1", "--outage", "3"],
    "core": ["--rounds", "1", "--duration", "2"],
    "h2": ["--rounds", "1"],
}

_RATIO = re.compile(r"(\d+(?:\.\d+)?)x\b")
_BULLET = re.compile(r"^- (?P<label>[^:]+): \*\*(?P<ratio>\d+(?:\.\d+)?)x\*\*")
_LOWER_IS_BETTER = re.compile(r"cpu|latency|rss|µs|\bms\b|memory|per publish|per delivery", re.IGNORECASE)
_HIGHER_IS_BETTER = re.compile(r"/s\b|per second|throughput|rate|calls|received", re.IGNORECASE)
# Rows that describe the run rather than tidings' cost: the load generator's CPU, cores busy during a scenario.
_CONTEXT_ROW = re.compile(r"load generator|\(cores\)", re.IGNORECASE)


@dataclass(frozen=True)
class Ratio:
    """One measured ratio of a section: where it stands (row label and column) and its value."""

    key: str
    value: float

    @property
    def lower_is_better(self) -> bool | None:
        """True for a cost (CPU, latency, memory), False for a rate, None when the label says neither."""
        if _LOWER_IS_BETTER.search(self.key):
            return True
        if _HIGHER_IS_BETTER.search(self.key):
            return False
        return None


def section(text: str, name: str) -> str:
    """The text of section ``name`` (empty when the page has none)."""
    start_marker, end_marker = markers(name)
    start, end = text.find(start_marker), text.find(end_marker)
    return text[start + len(start_marker) : end] if 0 <= start < end else ""


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def ratios(text: str) -> list[Ratio]:
    """The measured ratios in a section's tables (``21.6 (1.17x)``, ``**0.84x**``, a ratio column) and in its
    ``- label: **0.93x**`` lines; target and floor columns (what a ratio should be) are left out."""
    found: list[Ratio] = []
    header: list[str] = []
    for line in text.splitlines():
        if bullet := _BULLET.match(line):
            found.append(Ratio(bullet["label"].strip(), float(bullet["ratio"])))
            continue
        if not line.startswith("|"):
            header = []
            continue
        cells = _cells(line)
        if not header:
            header = cells
            continue
        if set(line) <= set("|-: ") or _CONTEXT_ROW.search(cells[0]):
            continue
        for column, cell in enumerate(cells[1:], start=1):
            name = header[column] if column < len(header) else ""
            if "target" in name or "floor" in name:
                continue
            for match in _RATIO.finditer(cell.replace("*", "")):
                found.append(Ratio(f"{header[0]}: {cells[0]} [{name}]", float(match[1])))
    return found


def regressions(recorded: list[Ratio], measured: list[Ratio], tolerance: float) -> list[str]:
    """Each ratio that moved the wrong way by more than ``tolerance`` (both ways when its direction is
    unknown), as a line naming it."""
    now = {ratio.key: ratio.value for ratio in measured}
    failures = []
    for ratio in recorded:
        value = now.get(ratio.key)
        if value is None or ratio.value == 0:
            continue
        change = value / ratio.value - 1
        worse = {True: change, False: -change, None: abs(change)}[ratio.lower_is_better]
        if worse > tolerance:
            failures.append(f"{ratio.key}: recorded {ratio.value:g}x, now {value:g}x ({change:+.0%})")
    return failures


def run_quick(name: str, scratch: Path) -> list[Ratio]:
    """Run section ``name``'s benchmark in quick mode (or `QUICK_ARGUMENTS`), written into ``scratch``; its
    ratios."""
    arguments = QUICK_ARGUMENTS.get(name, QUICK)
    command = [sys.executable, str(ROOT / "bench" / BENCHMARKS[name]), *arguments, "--write", str(scratch)]
    print(f"[{name}] {' '.join(command[1:])}", flush=True)
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return ratios(section(scratch.read_text(), name))


def check(names: list[str], tolerance: float) -> list[str]:
    """Every failing ratio of ``names``' benchmarks, each prefixed by its section."""
    recorded_text = RECORDED.read_text()
    failures: list[str] = []
    with tempfile.TemporaryDirectory() as directory:
        scratch = Path(directory) / "performance.md"
        for name in names:
            recorded = ratios(section(recorded_text, name))
            if not recorded:
                failures.append(f"{name}: no ratio recorded in {RECORDED.relative_to(ROOT)}")
                continue
            shutil.copy(RECORDED, scratch)
            first = regressions(recorded, run_quick(name, scratch), tolerance)
            if first:  # a quick run is noisy: a ratio fails only if a second run agrees
                print(f"[{name}] past the tolerance once, running again:\n  " + "\n  ".join(first), flush=True)
                again = set(regressions(recorded, run_quick(name, scratch), tolerance))
                keys = {line.split(": recorded")[0] for line in again}
                first = [line for line in first if line.split(": recorded")[0] in keys]
            failures += [f"{name}: {line}" for line in first]
            print(f"[{name}] {'FAIL' if first else 'ok'} ({len(recorded)} ratios)", flush=True)
    return failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), help="check only these sections")
    parser.add_argument("--tolerance", type=float, default=0.15, help="allowed move the wrong way (default 0.15)")
    options = parser.parse_args()
    failures = check(options.only or list(BENCHMARKS), options.tolerance)
    if failures:
        print(f"\n{len(failures)} ratio(s) moved past {options.tolerance:.0%}:\n  " + "\n  ".join(failures))
        print("If the change is meant, record new figures with `make bench` on an idle machine.")
        sys.exit(1)
    print(f"\nevery ratio within {options.tolerance:.0%} of docs/performance.md")


if __name__ == "__main__":
    main()
