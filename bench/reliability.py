"""Reliability at the review's full size (issue 17): Redis Cluster failovers under load, and hostile HTTP/2 clients.

The shorter shapes run in ``make test`` (``tests/integration/test_redis_failover.py``,
``test_h2_hostile_clients.py``); this script runs the longer ones for ``make soak``, on loopback:

1. **Failover**: a 3 masters + 3 replicas Redis Cluster (``cluster-node-timeout`` 1 s) and one tidings node on
   it; per round, subscribers on ``--topics`` topics across the shards and a publisher on each (every
   ``--interval`` s), then one shard's master is SIGKILLed (``--kill-rounds``; it is started again afterwards and
   rejoins as a replica) or its replica is sent ``CLUSTER FAILOVER`` (``--graceful-rounds``). Measured per round:
   promotion time, time until that shard's publishes work again, and what subscribers lost, repeated or
   reordered against the new master's stream.
2. **Hostile h2 clients**: 2 connections x 10,000 streams of 60 KiB unfinished bodies (anonymous, and with
   ``--require-auth`` without a token); 2,000 streams x 1,000 references to one 4 KB header; 100 slowloris
   connections (a preface byte every 3 s) against ``--require-auth --max-connections 100``, from one address and
   from ten, while an authenticated client connects and publishes every 100 ms. Measured: server RSS growth,
   the slowest publish of a client meanwhile, when the slow connections are closed, and lockouts.

Every shape checks its bounds at the end; any broken bound makes the exit status 1. ``--write
docs/performance.md`` replaces the reliability section. ``--quick`` runs one round of each at reduced size.

It imports the tests' helpers (``tests/_redis.py``, ``tests/integration/_failover.py``, ``_h2client.py`` and
the frames of ``test_h2_hostile_clients.py``) so that the soak runs exactly the tests' shapes, only longer.

    python bench/reliability.py --write docs/performance.md
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # the repository root: the tests' helpers

from _failover_rounds import failover_failures, failover_rounds
from _hostile_h2 import header_amplification, slowloris, unfinished_bodies
from _report import write_section

# Bounds, stated in the section. Memory: 1.18 GiB before issue 17 for the bodies, 97-130 MiB for the headers.
MAX_BODIES_RSS_GROWTH_MIB = 64.0
MAX_HEADERS_RSS_GROWTH_MIB = 16.0
SLOWEST_PUBLISH_DURING_BODIES_S = 2.0  # as test_h2_hostile_clients.py
SLOWEST_PUBLISH_DURING_HEADERS_S = 0.5
CLOSE_SLACK_S = 3.0  # the preface deadline is checked every second, on a busy machine


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one round of each at reduced size")
    parser.add_argument("--only", choices=("failover", "h2"), help="run one of the two shapes")
    failover = parser.add_argument_group("failover")
    failover.add_argument("--kill-rounds", type=int, default=4)
    failover.add_argument("--graceful-rounds", type=int, default=4)
    failover.add_argument("--topics", type=int, default=20)
    failover.add_argument("--interval", type=float, default=0.012, help="seconds between one topic's publishes")
    failover.add_argument("--warmup", type=float, default=5.0, help="seconds of load before the failover")
    failover.add_argument("--after", type=float, default=3.0, help="seconds of load after publishes work again")
    failover.add_argument("--node-timeout-ms", type=int, default=1000, help="cluster-node-timeout")
    failover.add_argument("--recovery-bound", type=float, default=3.0, help="seconds from promotion to publishes")
    hostile = parser.add_argument_group("hostile h2 clients")
    hostile.add_argument("--connections", type=int, default=2)
    hostile.add_argument("--streams", type=int, default=10_000, help="unfinished bodies per connection")
    hostile.add_argument("--amplified-streams", type=int, default=2000)
    hostile.add_argument("--references", type=int, default=1000, help="references to the 4 KB header per stream")
    hostile.add_argument("--slowloris", type=int, default=100, help="connections, and --max-connections")
    hostile.add_argument("--trickle-every", type=float, default=3.0, help="seconds between preface bytes")
    hostile.add_argument("--request-timeout", type=float, default=10.0, help="the server's --request-timeout")
    parser.add_argument("--write", type=Path, help="replace the reliability section of this markdown file")
    args = parser.parse_args()
    if args.quick:
        args.kill_rounds, args.graceful_rounds, args.topics = 1, 1, 12
        args.warmup, args.after = 2.0, 1.0
        args.streams, args.amplified_streams, args.slowloris, args.request_timeout = 2000, 500, 20, 2.0
    return args


def _hostile(args: argparse.Namespace, directory: Path) -> dict[str, dict[str, Any]]:
    shapes = {
        "bodies": lambda: unfinished_bodies(directory / "bodies", args.connections, args.streams, args.request_timeout),
        "bodies_auth": lambda: unfinished_bodies(
            directory / "bodies-auth", args.connections, args.streams, args.request_timeout, "--require-auth"
        ),
        "headers": lambda: header_amplification(directory / "headers", args.amplified_streams, args.references),
        "slowloris": lambda: slowloris(
            directory / "slowloris", args.slowloris, 1, args.trickle_every, args.request_timeout
        ),
        "slowloris_spread": lambda: slowloris(
            directory / "slowloris-spread", args.slowloris, 10, args.trickle_every, args.request_timeout
        ),
    }
    results: dict[str, dict[str, Any]] = {}
    for name, run in shapes.items():
        results[name] = run()
        print(f"{name}: {json.dumps(results[name])}", flush=True)
    return results


def _hostile_failures(results: dict[str, dict[str, Any]], request_timeout: float) -> list[str]:
    """The bounds the hostile shapes must keep, broken."""
    failures: list[str] = []
    for name, rss_bound, publish_bound in (
        ("bodies", MAX_BODIES_RSS_GROWTH_MIB, SLOWEST_PUBLISH_DURING_BODIES_S),
        ("bodies_auth", MAX_BODIES_RSS_GROWTH_MIB, SLOWEST_PUBLISH_DURING_BODIES_S),
        ("headers", MAX_HEADERS_RSS_GROWTH_MIB, SLOWEST_PUBLISH_DURING_HEADERS_S),
    ):
        shape: dict[str, Any] = results[name]
        if shape["rss_growth_mib"] > rss_bound:
            failures.append(f"{name}: the server's RSS grew by {shape['rss_growth_mib']} MiB (bound {rss_bound:g})")
        if shape["publish_failures"] or shape["slowest_publish_ms"] > publish_bound * 1000:
            failures.append(
                f"{name}: {shape['publish_failures']} publishes failed meanwhile, the slowest took "
                f"{shape['slowest_publish_ms']} ms (bound {publish_bound * 1000:g})"
            )
    if not results["headers"]["closed"]:
        failures.append("headers: the amplifying connection was not closed")
    close_bound = request_timeout + CLOSE_SLACK_S
    for name in ("slowloris", "slowloris_spread"):
        shape = results[name]
        held = shape["held_closed_after_s"]
        if shape["never_closed"] or (held and held[-1] > close_bound):
            failures.append(f"{name}: {shape['never_closed']} never closed, the held ones closed after {held} s")
    if results["slowloris"]["legit_failed"]:
        failures.append(f"slowloris from one address: the client failed {results['slowloris']['legit_failed']} times")
    spread_lockout: Any = results["slowloris_spread"]["legit_longest_lockout_s"]
    if spread_lockout > close_bound:
        failures.append(f"slowloris from ten addresses: the client was locked out for {spread_lockout} s")
    return failures


def _row(*cells: object) -> str:
    return "| " + " | ".join(map(str, cells)) + " |"


def _table(header: list[str], rows: list[str]) -> str:
    return "\n".join([_row(*header), _row(*["---"] * len(header)), *rows])


FAILOVER_COLUMNS = [
    "round",
    "failover",
    "promoted after",
    "that shard's publishes working again, after the promotion",
    "`/ready` 200 after the promotion",
    "that shard's publishes `UNAVAILABLE` / `DEADLINE_EXCEEDED`",
    "other shards' `UNAVAILABLE`",
    "acknowledged",
    "acknowledged, lost by Redis",
    "missing / duplicated / reordered at subscribers",
    "discontinuities",
    "subscribers that continued on their stream",
]


def _failover_section(report: dict[str, Any], args: argparse.Namespace) -> str:
    rows = [
        _row(
            r["number"],
            f"{r['kind']}, shard {r['shard']}",
            f"{r['promoted_s']} s",
            f"{r['working_s']} s",
            f"{r['ready_s']} s" if r["ready_s"] >= 0 else "not within 10 s",
            f"{r['shard_refused']} / {r['shard_unsure']}",
            r["other_refused"],
            f"{r['acked']:,}",
            r["lost_by_redis"],
            f"{r['missing']} / {r['duplicated']} / {r['reordered']}",
            r["discontinuities"],
            f"{r['continued']} of {r['subscribers']}",
        )
        for r in report["rounds"]
    ]
    rates = [r["rate_per_topic"] for r in report["rounds"]] or [0.0]
    setup = f"""3 masters + 3 replicas (`cluster-node-timeout {args.node_timeout_ms}`), one tidings node
        (`--redis-cluster`). Each round: a fresh cache, {args.topics} topics over the 3 shards, each with one subscriber
        (from its first message, never resubscribed) and a publisher every {args.interval * 1000:g} ms ({min(rates):g}
        to {max(rates):g} publishes/s per topic achieved); {args.warmup:g} s of load, then the failover, then
        {args.after:g} s of load after that shard's publishes work again. A SIGKILLed master is started again after its
        round and rejoins as a replica; rounds turn over the shards, so later rounds fail shards over to nodes that
        were their masters before. Counts are against what the new master's streams hold
        (`tests/integration/_failover.py`)."""
    counters = f"""The node counted {report["failovers_counted"]:g} failovers (`tidings_redis_failovers_total`)
        and {report["slot_map_refreshes"]:g} slot-map reads (`tidings_redis_slot_map_refreshes_total`)."""
    blocks = ["### Redis Cluster failover", _prose(setup), _table(FAILOVER_COLUMNS, rows), _prose(counters)]
    if report["error"]:
        blocks.append(f"**{report['error']}**")
    return "\n\n".join(blocks)


def _bodies_outcome(shape: dict[str, Any]) -> str:
    answers = [
        (shape["streams_refused"], "refused at their headers (`REFUSED_STREAM`)"),
        (shape["streams_unauthenticated"], "answered `UNAUTHENTICATED` at their headers"),
        (shape["streams_deadline_exceeded"], "answered `DEADLINE_EXCEEDED`"),
        (shape["streams_otherwise_answered"], "answered otherwise"),
        (shape["streams_unanswered"], "unanswered"),
    ]
    streams = ", ".join(f"{count:,} {what}" for count, what in answers if count)
    return (
        f"the flow-control windows let {shape['body_bytes_let_through_mib']} MiB of body through; streams: {streams}; "
        f"all answered {shape['all_answered_after_s']} s after the first headers"
    )


def _slowloris_outcome(shape: dict[str, Any]) -> str:
    held = shape["held_closed_after_s"]
    closing = f"{shape['held']} held, closed {held[0]} to {held[-1]} s after they opened" if held else "none held"
    return (
        f"{shape['refused_at_once']} refused at once, {closing}, {shape['never_closed']} never closed; the client: "
        f"{shape['legit_failed']} of {shape['legit_attempts']} attempts failed, locked out "
        f"{shape['legit_longest_lockout_s']} s at most"
    )


def _hostile_section(results: dict[str, dict[str, Any]]) -> str:
    bodies, auth, headers = results["bodies"], results["bodies_auth"], results["headers"]

    def served(shape: dict[str, Any]) -> str:
        sending = shape.get("slowest_publish_while_sending_ms")
        during = f"; {sending} ms while the bodies were sent" if sending is not None else ""
        return f"{shape['slowest_publish_ms']} ms ({shape['publish_failures']} failed{during})"

    rows = [
        _row(
            bodies["shape"],
            f"`{bodies['flags']}`",
            f"{bodies['rss_growth_mib']} MiB",
            served(bodies),
            _bodies_outcome(bodies),
        ),
        _row(
            "the same, without a token",
            f"`{auth['flags']}`",
            f"{auth['rss_growth_mib']} MiB",
            served(auth),
            _bodies_outcome(auth),
        ),
        _row(
            f"{headers['shape']} ({headers['wire_mib']} MiB on the wire)",
            "(none)",
            f"{headers['rss_growth_mib']} MiB",
            served(headers),
            f"closed after {headers['closed_after_s']} s (GOAWAY {', '.join(headers['goaway'])}), "
            f"{headers['server_cpu_s']} s of server CPU",
        ),
    ]
    rows += [
        _row(
            results[name]["shape"],
            f"`{results[name]['flags']}`",
            f"{results[name]['rss_growth_mib']} MiB",
            f"{results[name]['slowest_publish_ms']} ms (connect and publish)",
            _slowloris_outcome(results[name]),
        )
        for name in ("slowloris", "slowloris_spread")
    ]
    columns = ["attack", "server flags", "server RSS growth", "slowest publish meanwhile", "what became of the attack"]
    setup = """Each attack on a fresh server; the server's resident memory is sampled every 50 ms (growth: the
        peak during the attack less the size before it). Meanwhile a client publishes every 20 ms on a connection of
        its own (in the slowloris rows, an authenticated client on another loopback address opens a new connection
        and publishes every 100 ms). The unfinished bodies' connections stay open until every stream is answered:
        the bodies are sent in the first seconds, and the streams the server accepted are answered
        `DEADLINE_EXCEEDED` at `--request-timeout` after their headers."""
    bounds = f"""Bounds checked: the server's RSS grows by at most {MAX_BODIES_RSS_GROWTH_MIB:g} MiB for the
        unfinished bodies (1.18 GiB before issue 17) and {MAX_HEADERS_RSS_GROWTH_MIB:g} MiB for the headers; every
        publish meanwhile succeeds, the slowest within {SLOWEST_PUBLISH_DURING_BODIES_S:g} s (bodies) and
        {SLOWEST_PUBLISH_DURING_HEADERS_S:g} s (headers); every slow connection is closed within `--request-timeout` +
        {CLOSE_SLACK_S:g} s; the client is never refused while the slow connections come from one address
        (`--max-connections-per-address`, half of `--max-connections` by default, leaves the rest to other
        addresses), and for at most `--request-timeout` + {CLOSE_SLACK_S:g} s when they come from ten addresses and
        take every connection."""
    blocks = ["### Hostile HTTP/2 clients (`h2` transport)", _prose(setup), _table(columns, rows), _prose(bounds)]
    return "\n\n".join(blocks)


def _prose(text: str) -> str:
    """One paragraph, its words wrapped at 120 characters."""
    return textwrap.fill(" ".join(text.split()), 120, break_long_words=False, break_on_hyphens=False)


def _section(report: dict[str, Any], args: argparse.Namespace, load: str) -> str:
    verdict = "passed" if not report["failures"] else f"FAILED: {'; '.join(report['failures'])}"
    size = "at reduced size (`--quick`)" if args.quick else "at full size"
    intro = f"""The reliability review's shapes {size} (`bench/reliability.py`; `make test` runs shorter ones). Load
        average at the start: {load}. Result: **{verdict}**."""
    blocks = ["## Reliability (`make soak`)", _prose(intro)]
    if "failover" in report:
        blocks.append(_failover_section(report["failover"], args))
    if "hostile" in report:
        blocks.append(_hostile_section(report["hostile"]))
    return "\n\n".join(blocks) + "\n"


def main() -> int:
    args = _parse()
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    report: dict[str, Any] = {}
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="tidings-reliability-") as directory:
        if args.only in (None, "failover"):
            report["failover"] = asyncio.run(failover_rounds(args, Path(directory) / "failover"))
            failures += failover_failures(report["failover"], args.recovery_bound)
        if args.only in (None, "h2"):
            report["hostile"] = _hostile(args, Path(directory) / "h2")
            failures += _hostile_failures(report["hostile"], args.request_timeout)
    report["failures"] = failures
    print(json.dumps(report, indent=2))
    if args.write is not None:
        write_section(args.write, "reliability", _section(report, args, load))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
