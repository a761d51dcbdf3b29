"""The Redis engine against the memory engine, one tidings process each, same scenarios, interleaved rounds.

Starts its own redis-server (no persistence) on a free port; for each round runs the publish scenario (32 in
flight), fan-out to 100 subscribers and the latency scenario against tidings with the memory engine and with
``--redis-url`` (both on the default gRPC transport, h2), reads Redis's own CPU (``INFO cpu``) around the Redis
run's publish scenario, and runs fan-out and latency across two Redis-engine processes (publisher on A,
subscribers on B, B's CPU measured). Prints a
markdown table of medians and the ratios Redis/memory; ``--write docs/performance.md`` replaces the
``bench:redis`` section.

Usage::

    python bench/redis_bench.py                   # 2 rounds, 10 s per scenario
    python bench/redis_bench.py --quick           # smoke run
    python bench/redis_bench.py --write docs/performance.md
"""

from __future__ import annotations

import argparse
import datetime
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import redis
from _plot import draw
from _report import write_section
from run import HOST, TARGETS, Scenario, log, machine, run_loadgen, running_server, tidings_h2_command

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
# Both engines serve gRPC on the default transport (h2): the memory engine is run.py's "tidings-h2" target.
MEMORY = "tidings-h2"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def start_redis(directory: Path) -> tuple[subprocess.Popen[str], int]:
    """A redis-server without persistence; returns once it logged that it accepts connections."""
    port = free_port()
    process = subprocess.Popen(
        [REDIS_SERVER, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no", "--dir",
         str(directory), "--logfile", ""],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert process.stdout is not None
    for line in process.stdout:
        if "Ready to accept connections" in line:
            break
    else:
        raise RuntimeError(f"redis-server exited with {process.wait()}")
    # Keep reading its log, so that a full pipe never blocks it.
    threading.Thread(target=process.stdout.read, daemon=True).start()
    return process, port


def redis_cpu_seconds(port: int) -> float:
    """user + sys CPU seconds Redis used since it started."""
    with redis.Redis(host=HOST, port=port) as client:
        info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def scenarios(options: argparse.Namespace) -> list[Scenario]:
    timing = ("--duration", str(options.duration), "--warmup", str(options.warmup))
    return [
        Scenario("publish", ("publish", "--concurrency", "32", "--channels", "2", *timing)),
        Scenario("fanout100", ("fanout", "--subscribers", "100", *timing)),
        Scenario("latency", ("latency", "--subscribers", "100", "--rate", "50", *timing)),
        # For the curve of deliveries/s against subscribers (one process per engine only).
        Scenario("fanout1", ("fanout", "--subscribers", "1", *timing)),
        Scenario("fanout10", ("fanout", "--subscribers", "10", *timing)),
    ]


def run_engine(name: str, options: argparse.Namespace, redis_port: int, results: dict[str, list[float]]) -> None:
    with running_server(name, options.payload_size, 60.0) as (port, pid):
        for scenario in scenarios(options):
            before = redis_cpu_seconds(redis_port)
            report = run_loadgen(scenario, port, pid, options)
            redis_used = redis_cpu_seconds(redis_port) - before
            if "error" in report:
                raise RuntimeError(f"{name} {scenario.name}: {report['error']}")
            log(f"  {name} {scenario.name}: {_short(report)}")
            if scenario.name == "fanout100":
                results.setdefault("fanout100_client_cores", []).append(float(report.get("client_cores") or 0.0))
                results.setdefault("fanout100_server_cores", []).append(float(report.get("server_cores") or 0.0))
            if scenario.name == "publish":
                results.setdefault("publish_per_s", []).append(report["publishes_per_s"])
                results.setdefault("cpu_ms_per_1k_publishes", []).append(report["server_cpu_ms_per_1k_publishes"])
                if name == "tidings-redis":
                    published = report["publishes_per_s"] * (options.duration + options.warmup)
                    results.setdefault("redis_cpu_ms_per_1k_publishes", []).append(redis_used / published * 1e6)
            else:
                _fan_out_results(scenario.name, report, results)
            results.setdefault("other_cores", []).append(float(report.get("other_cores") or 0.0))
            results.setdefault("anomalies", []).append(
                float(sum(int(report.get(k) or 0) for k in ("gaps", "out_of_order", "discontinuities", "missing")))
            )


def _fan_out_results(name: str, report: dict[str, Any], results: dict[str, list[float]]) -> None:
    if name.startswith("fanout"):
        results.setdefault(f"{name}_per_s", []).append(report["deliveries_per_s"])
        if name == "fanout100":
            results.setdefault("cpu_ms_per_1k_deliveries", []).append(report["server_cpu_ms_per_1k_deliveries"])
    else:
        for percentile in ("p50", "p90", "p99", "max"):
            results.setdefault(f"latency_{percentile}_ms", []).append(report[f"{percentile}_ms"])


def run_workers(options: argparse.Namespace, results: dict[str, list[float]]) -> None:
    """One Redis-engine server with ``--workers 2`` (CPU of the supervisor and its workers together)."""
    with running_server("tidings-redis-workers", options.payload_size, 60.0) as (port, pid):
        scenario = scenarios(options)[1]
        report = run_loadgen(scenario, port, pid, options)
        if "error" in report:
            raise RuntimeError(f"workers {scenario.name}: {report['error']}")
        log(f"  workers {scenario.name}: {_short(report)}")
        _fan_out_results(scenario.name, report, results)
        results.setdefault("fanout100_client_cores", []).append(float(report.get("client_cores") or 0.0))
        results.setdefault("fanout100_server_cores", []).append(float(report.get("server_cores") or 0.0))


def run_cross_node(options: argparse.Namespace, results: dict[str, list[float]]) -> None:
    """Two Redis-engine processes: subscribers on B (whose CPU is measured), the publisher on A."""
    with (
        running_server("tidings-redis", options.payload_size, 60.0) as (port_a, _),
        running_server("tidings-redis", options.payload_size, 60.0) as (port_b, pid_b),
    ):
        for scenario in scenarios(options)[1:3]:  # fan-out to 100 and latency
            crossing = Scenario(scenario.name, (*scenario.args, "--publish-address", f"{HOST}:{port_a}"))
            report = run_loadgen(crossing, port_b, pid_b, options)
            if "error" in report:
                raise RuntimeError(f"cross-node {scenario.name}: {report['error']}")
            log(f"  cross-node {scenario.name}: {_short(report)}")
            _fan_out_results(scenario.name, report, results)
            results.setdefault("other_cores", []).append(float(report.get("other_cores") or 0.0))
            results.setdefault("anomalies", []).append(
                float(sum(int(report.get(k) or 0) for k in ("gaps", "out_of_order", "discontinuities", "missing")))
            )


def _short(report: dict[str, Any]) -> str:
    keys = ("publishes_per_s", "deliveries_per_s", "server_cores", "client_cores", "other_cores")
    return " ".join(f"{k}={report[k]:.4g}" for k in keys if isinstance(report.get(k), int | float))


ROWS = [
    ("publish_per_s", "publish throughput, 32 in flight (publishes/s)", 0, ""),
    ("cpu_ms_per_1k_publishes", "server CPU per 1,000 publishes (ms)", 1, "≤ 1.3x"),
    ("fanout100_per_s", "fan-out, 100 subscribers (deliveries/s)", 0, ""),
    ("cpu_ms_per_1k_deliveries", "server CPU per 1,000 deliveries, fan-out@100 (ms)", 1, "≤ 1.15x"),
    ("fanout100_server_cores", "server CPU during fan-out@100 (cores)", 2, ""),
    ("fanout100_client_cores", "load generator CPU during fan-out@100 (cores)", 2, ""),
    ("latency_p50_ms", "latency p50, 100 subscribers at 50 publishes/s (ms)", 2, ""),
    ("latency_p99_ms", "latency p99, 100 subscribers at 50 publishes/s (ms)", 2, ""),
    ("redis_cpu_ms_per_1k_publishes", "Redis CPU per 1,000 publishes (ms, approximate)", 1, ""),
    ("anomalies", "gaps, reorders, discontinuities (total)", 0, ""),
]


def table(results: dict[str, dict[str, list[float]]]) -> str:
    lines = [
        "| metric | redis engine | memory engine | ratio | target | redis, publisher on another node "
        "| redis, --workers 2 |",
        "| --- | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    for key, label, digits, goal in ROWS:
        summed = key == "anomalies"
        values = {
            engine: (sum(v) if summed else statistics.median(v)) if (v := results[engine].get(key)) else None
            for engine in ("tidings-redis", MEMORY, "cross-node", "workers")
        }
        red, mem, cross, workers = (values[k] for k in ("tidings-redis", MEMORY, "cross-node", "workers"))
        ratio = red / mem if red is not None and mem and not summed else None
        verdict = goal
        if goal and ratio is not None:
            bound = float(goal.removeprefix("≤ ").removesuffix("x"))
            verdict += " — pass" if ratio <= bound else " — **FAIL**"
        cells = [
            label,
            "—" if red is None else f"{red:,.{digits}f}",
            "—" if mem is None else f"{mem:,.{digits}f}",
            "" if ratio is None else f"{ratio:.2f}x",
            verdict,
            "" if cross is None else f"{cross:,.{digits}f}",
            "" if workers is None else f"{workers:,.{digits}f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description="The Redis engine against the memory engine.")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--payload-size", type=int, default=64)
    parser.add_argument("--write", type=Path, metavar="FILE")
    options = parser.parse_args()
    options.duration = 1.0 if options.quick else 10.0
    options.warmup = 0.3 if options.quick else 1.0
    results: dict[str, dict[str, list[float]]] = {MEMORY: {}, "tidings-redis": {}, "cross-node": {}, "workers": {}}
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as directory:
        redis_process, redis_port = start_redis(Path(directory))
        url = f"redis://{HOST}:{redis_port}"
        TARGETS["tidings-redis"] = lambda port, data_dir, size: [
            *tidings_h2_command(port, data_dir, size),
            "--redis-url",
            url,
        ]
        TARGETS["tidings-redis-workers"] = lambda port, data_dir, size: [
            *TARGETS["tidings-redis"](port, data_dir, size),
            "--workers",
            "2",
        ]
        try:
            for round_number in range(1, options.rounds + 1):
                for name in (MEMORY, "tidings-redis"):
                    log(f"[round {round_number}/{options.rounds}] {name}")
                    run_engine(name, options, redis_port, results[name])
                log(f"[round {round_number}/{options.rounds}] cross-node")
                run_cross_node(options, results["cross-node"])
                log(f"[round {round_number}/{options.rounds}] workers")
                run_workers(options, results["workers"])
        finally:
            redis_process.terminate()
            redis_process.wait(10)
    rendered = table(results)
    busy = max(v for r in results.values() for v in r.get("other_cores", [0.0]))
    notes = (
        f"Other processes used up to {busy:.2f} cores during the measured windows; figures may be noisy."
        if busy > 0.1
        else ""
    )
    print(rendered + ("\n\n" + notes if notes else ""))
    if options.write:
        kind = "quick smoke run, not representative" if options.quick else f"{options.duration:g} s per scenario"
        body = "\n".join(
            [
                "## Redis engine against the memory engine",
                "",
                f"Measured {datetime.date.today().isoformat()} on {machine()}, redis-server "
                f"{_redis_version()}; {options.rounds} interleaved round(s), medians; {kind}; "
                f"payload {options.payload_size} bytes. One tidings process each, serving gRPC on the default "
                "transport (h2); Redis on the same machine.",
                "",
                f"Command: `python bench/redis_bench.py{' --quick' if options.quick else ''} --write {options.write}`",
                "",
                rendered,
                "",
                notes,
                "",
                "![deliveries/s against subscribers, and latency percentiles, per engine](redis.png)",
            ]
        )
        write_section(options.write, "redis", body)
        labels = {
            MEMORY: "memory engine",
            "tidings-redis": "redis engine",
            "cross-node": "redis, publisher on another node",
        }
        draw(results, labels, options.write.parent / "redis.png", "Redis engine against the memory engine")
    return 0


def _redis_version() -> str:
    output = subprocess.run([REDIS_SERVER, "--version"], capture_output=True, text=True, check=False).stdout
    return output.split("v=")[1].split()[0] if "v=" in output else "?"


if __name__ == "__main__":
    sys.exit(main())
