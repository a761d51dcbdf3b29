"""Auth on the hot path: publish throughput with a disposable token against anonymous, same server, same run.

    python bench/auth.py [--rounds 3] [--duration 10] [--quick] [--write docs/performance.md]

Starts one ``tidings server`` (loopback, so anonymous calls are allowed too), mints a disposable token with a
token id through ``token.Token/GenerateDisposableToken`` using an admin key passed in ``TIDINGS_ADMIN_KEY``,
then alternates the load generator's publish scenario anonymous / with the token. Target: >= 0.95x.
"""

from __future__ import annotations

import argparse
import datetime
import os
import secrets
import shlex
import statistics
import sys
from pathlib import Path

import grpc
from _report import write_section
from momento_wire_types import permissionmessages_pb2 as perm
from momento_wire_types import token_pb2, token_pb2_grpc
from run import CACHE, HOST, Scenario, log, machine, run_loadgen, running_server

TARGET_RATIO = 0.95


def mint_token(port: int, admin_key: str) -> str:
    """A 1-hour read-write token on the bench cache, with a token id (so publishes are stamped)."""
    scope = perm.PermissionsType.TopicPermissions(
        role=perm.TopicReadWrite,
        cache_selector=perm.PermissionsType.CacheSelector(cache_name=CACHE),
        all_topics=perm.PermissionsType.All(),
    )
    request = token_pb2._GenerateDisposableTokenRequest(
        expires=token_pb2._GenerateDisposableTokenRequest.Expires(valid_for_seconds=3600),
        permissions=perm.Permissions(
            explicit=perm.ExplicitPermissions(permissions=[perm.PermissionsType(topic_permissions=scope)])
        ),
        token_id="bench-publisher",
    )
    with grpc.insecure_channel(f"{HOST}:{port}") as channel:
        response = token_pb2_grpc.TokenStub(channel).GenerateDisposableToken(
            request, metadata=(("authorization", admin_key),), timeout=10
        )
    return str(response.api_key)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--payload-size", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="1 s runs, one round: a smoke test")
    parser.add_argument("--write", type=Path, metavar="FILE", help="replace the bench:auth section of FILE")
    options = parser.parse_args(argv)
    if options.quick:
        options.rounds, options.duration, options.warmup = 1, 1.0, 0.5
    admin_key = os.environ["TIDINGS_ADMIN_KEY"] = secrets.token_urlsafe(32)
    timing = ("--duration", str(options.duration), "--warmup", str(options.warmup))
    rates: dict[str, list[float]] = {"anonymous": [], "token": []}
    with running_server("tidings", options.payload_size, start_timeout=60) as (port, pid):
        token = mint_token(port, admin_key)
        for round_number in range(1, options.rounds + 1):
            for kind in ("anonymous", "token"):
                args = ("publish", "--concurrency", "32", "--channels", "2", *timing)
                if kind == "token":
                    args = (*args, "--token", token, "--no-create-cache")
                report = run_loadgen(Scenario(f"publish-{kind}", args), port, pid, options)
                if "error" in report:
                    log(f"{kind}: {report['error']}")
                    return 1
                rate = float(report["publishes_per_s"])
                rates[kind].append(rate)
                log(f"[round {round_number}/{options.rounds}] {kind}: {rate:,.0f} publishes/s")
    anonymous, with_token = statistics.median(rates["anonymous"]), statistics.median(rates["token"])
    ratio = with_token / anonymous
    verdict = "pass" if ratio >= TARGET_RATIO else "**FAIL**"
    table = "\n".join(
        [
            "| metric | with token | anonymous | ratio | target |",
            "| --- | ---: | ---: | ---: | --- |",
            f"| publish throughput, 32 in flight (publishes/s) | {with_token:,.0f} | {anonymous:,.0f} | "
            f"{ratio:.2f}x | >= {TARGET_RATIO}x — {verdict} |",
        ]
    )
    print(table)
    if options.write:
        command = shlex.join(["python", "bench/auth.py", *(argv if argv is not None else sys.argv[1:])])
        kind = "quick smoke run, not representative" if options.quick else f"{options.duration:g} s per run"
        body = (
            "## Auth on the hot path: disposable token against anonymous\n\n"
            f"Measured {datetime.date.today().isoformat()} on {machine()}; {options.rounds} interleaved round(s), "
            f"medians; {kind}.\n\nCommand: `{command}`\n\n"
            "Same server, same run: publishes carrying a disposable token (verified once, then served from the "
            "verification cache; stamped with its token id) against anonymous publishes.\n\n" + table
        )
        write_section(options.write, "auth", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
