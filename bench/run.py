"""Benchmark tidings against the ceiling (the fastest do-nothing grpc.aio server) and report the ratio.

For each round and target (interleaved: ceiling, tidings, ceiling, tidings, ...) this starts the server on
a free port, waits for its ``listening`` line, runs every scenario of ``bench/loadgen.py`` in a separate
process, and stops the server (SIGTERM). It prints a markdown table of the medians over the rounds.

Usage::

    python bench/run.py                        # both targets, 2 rounds, full durations
    python bench/run.py --quick                # smoke run: ~1 s scenarios, 500 idle subscriptions
    python bench/run.py --target ceiling       # one target only
    python bench/run.py --write docs/performance.md   # also replace the section between the markers

Run it with the interpreter that has tidings installed (subprocesses use ``sys.executable``).
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import os
import platform
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import grpc
from _plot import draw
from _report import write_section

BENCH = Path(__file__).resolve().parent
LOADGEN = BENCH / "loadgen.py"
CEILING = BENCH / "ceiling.py"
CACHE = "bench"
HOST = "127.0.0.1"

Results = dict[str, list[float]]  # metric key -> one value per round


# --- servers ---------------------------------------------------------------------------------------------


def ceiling_command(port: int, data_dir: Path, payload_size: int) -> list[str]:
    """The ceiling server; its items carry a value of the same size as the load generator publishes."""
    return [sys.executable, str(CEILING), "--port", str(port), "--payload-size", str(payload_size)]


def _tidings(port: int, data_dir: Path, transport: str) -> list[str]:
    return [
        sys.executable, "-m", "tidings", "server", "--host", HOST, "--port", str(port), "--http-port", "0",
        "--data-dir", str(data_dir), "--create-cache", CACHE, "--log-level", "info", "--grpc-transport", transport,
        # The idle scenario holds twice its --subscribers (10,000 in bench/transports.py) in the one cache.
        "--max-subscriptions-per-cache", "30000",
    ]  # fmt: skip


def tidings_command(port: int, data_dir: Path, payload_size: int) -> list[str]:
    """tidings as installed in this interpreter's environment, on a throw-away data directory, serving gRPC
    on grpc.aio (``--grpc-transport grpcio``: the core and Redis figures, and the "tidings, grpcio" column)."""
    return _tidings(port, data_dir, "grpcio")


def tidings_h2_command(port: int, data_dir: Path, payload_size: int) -> list[str]:
    """tidings serving gRPC on its own HTTP/2 transport (``--grpc-transport h2``, the default)."""
    return _tidings(port, data_dir, "h2")


TARGETS: dict[str, Callable[[int, Path, int], list[str]]] = {
    "ceiling": ceiling_command,
    "tidings": tidings_command,
    "tidings-h2": tidings_h2_command,
}


class ServerFailed(RuntimeError):
    """The server did not start, or died during the run."""


def free_port() -> int:
    """A port that was free a moment ago on the loopback address."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


class _OutputWatcher:
    """Drains a server's output in a thread; signals its first ``listening`` line or its end."""

    def __init__(self, stream: IO[str]) -> None:
        self.tail: collections.deque[str] = collections.deque(maxlen=40)
        self.listening = False
        self.signalled = threading.Event()
        self._thread = threading.Thread(target=self._drain, args=(stream,), daemon=True)
        self._thread.start()

    def _drain(self, stream: IO[str]) -> None:
        for line in stream:
            self.tail.append(line.rstrip())
            if not self.listening and "listening" in line:
                self.listening = True
                self.signalled.set()
        self.signalled.set()  # end of output: the process has exited

    def join(self) -> None:
        self._thread.join(timeout=5)


@contextmanager
def running_server(name: str, payload_size: int, start_timeout: float) -> Iterator[tuple[int, int]]:
    """Start target ``name`` on a free port; yield (port, pid) once it listens; stop it afterwards."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as data_dir:
        port = free_port()
        command = TARGETS[name](port, Path(data_dir), payload_size)
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True
        )
        assert process.stdout is not None
        output = _OutputWatcher(process.stdout)
        try:
            output.signalled.wait(start_timeout)
            if not output.listening:
                tail = "\n".join(output.tail)
                raise ServerFailed(f"{name} did not log 'listening' in {start_timeout} s:\n{tail}")
            yield port, process.pid
            if process.poll() is not None:
                raise ServerFailed(f"{name} exited with {process.returncode}:\n" + "\n".join(output.tail))
        finally:
            stop(process, name)
            output.join()


def stop(process: subprocess.Popen[str], name: str) -> None:
    """SIGTERM and wait; SIGKILL if it does not stop in 15 s."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        log(f"warning: {name} did not stop within 15 s of SIGTERM; killing it")
        process.kill()
        process.wait()


# --- scenarios -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """One load generator run: its name in the results and its loadgen.py arguments."""

    name: str
    args: tuple[str, ...]


def plan(options: argparse.Namespace) -> list[Scenario]:
    """The scenarios of one target run, idle first: its RSS reading needs a fresh server process."""
    timing = ("--duration", str(options.duration), "--warmup", str(options.warmup))
    idle_subscribers, idle_channels = (500, 5) if options.quick else (5000, 50)
    settle = "0.2" if options.quick else "1"
    return [
        Scenario("idle", ("idle", "--subscribers", str(idle_subscribers), "--channels", str(idle_channels),
                          "--settle", settle)),
        Scenario("publish", ("publish", "--concurrency", "32", "--channels", "2", *timing)),
        Scenario("fanout1", ("fanout", "--subscribers", "1", *timing)),
        Scenario("fanout10", ("fanout", "--subscribers", "10", *timing)),
        Scenario("fanout100", ("fanout", "--subscribers", "100", *timing)),
        Scenario("latency", ("latency", "--subscribers", "100", "--rate", "50", *timing)),
    ]  # fmt: skip


def run_loadgen(scenario: Scenario, port: int, pid: int, options: argparse.Namespace) -> dict[str, Any]:
    """Run one scenario in its own process and return its JSON report."""
    command = [
        sys.executable, str(LOADGEN), *scenario.args, "--address", f"{HOST}:{port}", "--cache", CACHE,
        "--server-pid", str(pid), "--payload-size", str(options.payload_size),
    ]  # fmt: skip
    timeout = options.duration + options.warmup + 300
    try:
        finished = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"load generator did not finish in {timeout:.0f} s"}
    lines = finished.stdout.strip().splitlines()
    try:
        report: dict[str, Any] = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        return {"error": f"load generator exited with {finished.returncode}: {finished.stderr.strip()[-2000:]}"}
    return report


def anomalies(report: dict[str, Any]) -> int:
    """Gaps, reorders, discontinuities and failed streams in one scenario report (a clean run has 0)."""
    errors: dict[str, int] = report.get("stream_errors") or {}
    counted = ("gaps", "out_of_order", "discontinuities", "missing")
    return sum(int(report.get(key) or 0) for key in counted) + sum(errors.values())


def extract(name: str, report: dict[str, Any]) -> dict[str, float]:
    """The table's metrics found in one scenario report."""
    values: dict[str, Any] = {"anomalies": anomalies(report), "other_cores": report.get("other_cores")}
    if name == "idle":
        values["idle_rss_kib"] = report.get("rss_kib_per_subscription")
    elif name == "publish":
        values |= {
            "publish_per_s": report.get("publishes_per_s"),
            "cpu_ms_per_1k_publishes": report.get("server_cpu_ms_per_1k_publishes"),
            "publish_server_cores": report.get("server_cores"),
            "publish_client_cores": report.get("client_cores"),
        }
    elif name.startswith("fanout"):
        subscribers = name.removeprefix("fanout")
        values[f"fanout{subscribers}_per_s"] = report.get("deliveries_per_s")
        if subscribers == "100":
            values |= {
                "cpu_ms_per_1k_deliveries": report.get("server_cpu_ms_per_1k_deliveries"),
                "fanout100_server_cores": report.get("server_cores"),
                "fanout100_client_cores": report.get("client_cores"),
            }
    elif name == "latency":
        values |= {
            "latency_p50_ms": report.get("p50_ms"),
            "latency_p90_ms": report.get("p90_ms"),
            "latency_p99_ms": report.get("p99_ms"),
            "latency_max_ms": report.get("max_ms"),
        }
    return {key: float(value) for key, value in values.items() if value is not None}


def summary(name: str, report: dict[str, Any]) -> str:
    """One progress line for stderr."""
    if "error" in report:
        return f"{name}: ERROR {report['error']}"
    shown = (
        "publishes_per_s", "deliveries_per_s", "p50_ms", "p99_ms", "rss_kib_per_subscription",
        "server_cores", "client_cores", "other_cores",
    )  # fmt: skip
    parts = [f"{key}={report[key]:.4g}" for key in shown if isinstance(report.get(key), float | int)]
    flagged = anomalies(report)
    return f"{name}: " + " ".join(parts) + (f" ANOMALIES={flagged}" if flagged else "")


def run_target(
    name: str,
    options: argparse.Namespace,
    results: Results,
    raw: list[dict[str, Any]],
    scenarios: list[Scenario] | None = None,
) -> None:
    """Start one target, run every scenario (default: `plan`'s) against it, add its metrics to ``results``."""
    try:
        with running_server(name, options.payload_size, options.start_timeout) as (port, pid):
            for scenario in plan(options) if scenarios is None else scenarios:
                report = run_loadgen(scenario, port, pid, options)
                raw.append({"target": name, "scenario": scenario.name, **report})
                log(f"  {name} {summary(scenario.name, report)}")
                metrics = extract(scenario.name, report)
                if "error" in report:  # counted, so that the table cannot look clean
                    metrics["errors"] = 1.0
                for key, value in metrics.items():
                    results.setdefault(key, []).append(value)
    except ServerFailed as failure:
        log(f"  {name}: SERVER FAILED: {failure}")
        results.setdefault("errors", []).append(1.0)
        raw.append({"target": name, "error": str(failure)})


# --- the table -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    """A row of the table: how to show it and, when it has one, its target."""

    key: str
    label: str
    digits: int
    goal: str = ""  # text of the target
    check: Callable[[float, float | None], bool | None] | None = None  # (tidings, ratio) -> met? None: n/a
    summed: bool = False  # show the total over rounds, not the median


def _at_least_ratio(bound: float) -> Callable[[float, float | None], bool | None]:
    return lambda value, ratio: None if ratio is None else ratio >= bound


def _at_most_ratio(bound: float) -> Callable[[float, float | None], bool | None]:
    return lambda value, ratio: None if ratio is None else ratio <= bound


def _at_most(bound: float) -> Callable[[float, float | None], bool | None]:
    return lambda value, ratio: value <= bound


METRICS = [
    Metric("publish_per_s", "publish throughput, 32 in flight (publishes/s)", 0, "≥ 0.9x", _at_least_ratio(0.9)),
    Metric("fanout1_per_s", "fan-out, 1 subscriber (deliveries/s)", 0),
    Metric("fanout10_per_s", "fan-out, 10 subscribers (deliveries/s)", 0),
    Metric("fanout100_per_s", "fan-out, 100 subscribers (deliveries/s)", 0, "≥ 0.9x", _at_least_ratio(0.9)),
    Metric("cpu_ms_per_1k_deliveries", "server CPU per 1,000 deliveries, fan-out@100 (ms)", 1, "≤ 1.1x",
           _at_most_ratio(1.1)),
    Metric("cpu_ms_per_1k_publishes", "server CPU per 1,000 publishes (ms)", 1),
    Metric("latency_p50_ms", "latency p50, 100 subscribers at 50 publishes/s (ms)", 2),
    Metric("latency_p99_ms", "latency p99, 100 subscribers at 50 publishes/s (ms)", 2, "≤ 5 ms", _at_most(5.0)),
    Metric("idle_rss_kib", "server RSS per idle subscription (KiB)", 1, "≤ 10 KiB", _at_most(10.0)),
    Metric("publish_server_cores", "server CPU during publish (cores)", 2),
    Metric("publish_client_cores", "load generator CPU during publish (cores)", 2),
    Metric("fanout100_server_cores", "server CPU during fan-out@100 (cores)", 2),
    Metric("fanout100_client_cores", "load generator CPU during fan-out@100 (cores)", 2),
    Metric("anomalies", "gaps, reorders, discontinuities, lost or failed streams (total)", 0, summed=True),
    Metric("errors", "scenarios that failed (total)", 0, summed=True),
]  # fmt: skip


def aggregate(metric: Metric, values: list[float] | None) -> float | None:
    """The median over the rounds (or the total, for counts of failures)."""
    if not values:
        return 0.0 if metric.summed else None
    return sum(values) if metric.summed else statistics.median(values)


def render_table(results: dict[str, Results]) -> str:
    """The markdown table: metric | tidings | ceiling | ratio | target."""
    rows = ["| metric | tidings | ceiling | ratio | target |", "| --- | ---: | ---: | ---: | --- |"]
    for metric in METRICS:
        tidings = aggregate(metric, results.get("tidings", {}).get(metric.key)) if "tidings" in results else None
        ceiling = aggregate(metric, results.get("ceiling", {}).get(metric.key)) if "ceiling" in results else None
        ratio = tidings / ceiling if tidings is not None and ceiling else None
        goal = metric.goal
        met = metric.check(tidings, ratio) if metric.check is not None and tidings is not None else None
        if met is not None:
            goal += " — pass" if met else " — **FAIL**"
        cells = [
            metric.label,
            _number(tidings, metric.digits),
            _number(ceiling, metric.digits),
            f"{ratio:.2f}x" if ratio is not None and not metric.summed else "",
            goal,
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _number(value: float | None, digits: int) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


# --- report ----------------------------------------------------------------------------------------------


def machine() -> str:
    """Cores, CPU model, Python and grpcio versions of this machine."""
    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = f" ({line.split(':', 1)[1].strip()})"
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores{cpu_model}, Python {platform.python_version()}, grpcio {grpc.__version__}"


def section(table: str, options: argparse.Namespace, command: str, notes: list[str]) -> str:
    """The markdown section written between the markers."""
    kind = "quick smoke run, not representative" if options.quick else f"{options.duration:g} s per scenario"
    lines = [
        "## Core benchmark: tidings against the ceiling",
        "",
        f"Measured {datetime.date.today().isoformat()} on {machine()}; "
        f"{options.rounds} interleaved round(s), medians; {kind}; payload {options.payload_size} bytes.",
        "",
        f"Command: `{command}`",
        "",
        "The ceiling (`bench/ceiling.py`) is a do-nothing grpc.aio server of the same protocol: the best "
        "Python + grpc.aio can do here. Server and load generator share the machine's cores; the "
        "load generator's CPU is shown so that a client-bound figure can be told apart.",
        "",
        table,
        "",
        *notes,
        "![deliveries/s against subscribers, and latency percentiles, tidings and the ceiling](core.png)",
    ]
    return "\n".join(lines) + "\n"


def log(message: str) -> None:
    """Progress goes to stderr, so stdout carries only the table."""
    print(message, file=sys.stderr, flush=True)


def argument_parser(description: str = "Benchmark tidings against the ceiling server.") -> argparse.ArgumentParser:
    """The options every orchestrator shares; one may add its own before `parse_args`."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--target", choices=sorted(TARGETS), help="run only this target")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds per target (default 2)")
    parser.add_argument("--quick", action="store_true", help="smoke run: ~1 s scenarios, fewer subscriptions")
    parser.add_argument("--duration", type=float, help="seconds measured per scenario (default 10, quick 1)")
    parser.add_argument("--warmup", type=float, help="seconds of load before measuring (default 1, quick 0.3)")
    parser.add_argument("--payload-size", type=int, default=64, help="bytes per published value")
    parser.add_argument("--start-timeout", type=float, default=60.0, help="seconds to wait for 'listening'")
    parser.add_argument("--write", type=Path, metavar="FILE", help="replace the marked section in FILE")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write every scenario's raw report")
    return parser


def parse_args(argv: list[str] | None, parser: argparse.ArgumentParser | None = None) -> argparse.Namespace:
    """Parse ``argv`` with ``parser`` (default: `argument_parser`'s) and fill in the quick/full defaults."""
    options = (parser or argument_parser()).parse_args(argv)
    if options.duration is None:
        options.duration = 1.0 if options.quick else 10.0
    if options.warmup is None:
        options.warmup = 0.3 if options.quick else 1.0
    return options


def main(argv: list[str] | None = None) -> int:
    """Run every round, print the table, write the reports asked for; exit 1 if a scenario failed."""
    options = parse_args(argv)
    command = shlex.join(["python", *sys.argv]) if argv is None else shlex.join(["python", "bench/run.py", *argv])
    targets = [options.target] if options.target else ["ceiling", "tidings"]
    results: dict[str, Results] = {name: {} for name in targets}
    raw: list[dict[str, Any]] = []
    for round_number in range(1, options.rounds + 1):
        for name in targets:
            log(f"[round {round_number}/{options.rounds}] {name}")
            run_target(name, options, results[name], raw)
    table = render_table(results)
    notes = []
    busy = [value for per_target in results.values() for value in per_target.get("other_cores", [])]
    if busy and max(busy) > 0.1:
        notes += [
            f"Warning: other processes used up to {max(busy):.2f} cores during the measured windows; "
            "figures may be low and noisy.",
            "",
        ]
    print(table)
    for note in notes:
        if note:
            print("\n" + note)
    if options.json:
        options.json.write_text(json.dumps(raw, indent=2) + "\n")
    if options.write:
        write_section(options.write, "core", section(table, options, command, notes))
        labels = {"ceiling": "ceiling (grpc.aio)", "tidings": "tidings"}
        draw(results, labels, options.write.parent / "core.png", "Core benchmark: tidings against the ceiling")
        log(f"wrote {options.write} and core.png")
    return 1 if any(results[name].get("errors") for name in targets) else 0


if __name__ == "__main__":
    sys.exit(main())
