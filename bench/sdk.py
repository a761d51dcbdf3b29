"""What the Python SDK costs over a raw grpc.aio stub, measured against the same ``tidings server`` in one run.

Usage::

    python bench/sdk.py                                  # full run, prints a Markdown table
    python bench/sdk.py --quick                          # fewer messages and trials (a smoke run, ~20 s)
    python bench/sdk.py --write docs/performance.md      # also replace the section between the markers

It starts ``tidings server`` as a subprocess on a free port, then, on one uvloop event loop in this process:

- **subscribe**: publishes N messages into one topic (its retention holds them all), then reads that same
  stream again and again from sequence number 1, alternately through a `tidings.TopicClientAsync` subscription
  (``async for``) and through a raw ``PubsubStub.Subscribe`` call (``await call.read()``), timing how fast each
  receives the N messages. Replaying a retained stream makes the reader, not a publisher, the limit.
- **publish**: publish calls per second through `TopicClientAsync.publish` and through a raw
  ``PubsubStub.Publish`` call (same request fields, timeout and ``authorization`` header), with 1 and with 32
  calls in flight, alternating trials.

The SDK and the stub each have their own channel (connection). Each figure is the median of the trials; the
ratio is SDK / raw, and the targets are >= 0.8.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import grpc
import grpc.aio
import uvloop
from _report import write_section
from momento_wire_types import cachepubsub_pb2 as pb
from momento_wire_types import cachepubsub_pb2_grpc

from tidings import TopicClientAsync, TopicPublish, TopicSubscribe, TopicSubscriptionItem

CACHE = "bench"
PAYLOAD = b"x" * 64
TARGET = 0.8
METADATA = (("authorization", ""),)
_LISTENING = re.compile(r"listening on grpc://(\S+):(\d+)")


@dataclass(frozen=True)
class Plan:
    """How much to measure."""

    messages: int
    subscribe_trials: int
    publish_calls: int
    publish_trials: int


QUICK = Plan(messages=20_000, subscribe_trials=4, publish_calls=2_000, publish_trials=4)
FULL = Plan(messages=50_000, subscribe_trials=9, publish_calls=6_000, publish_trials=7)


@dataclass(frozen=True)
class Sample:
    """One trial: operations per second (wall clock) and this process's CPU time per operation."""

    rate: float
    cpu_us: float


@dataclass(frozen=True)
class Comparison:
    """One scenario: raw and SDK medians over the trials."""

    scenario: str
    unit: str
    raw: list[Sample]
    sdk: list[Sample]

    @property
    def raw_rate(self) -> float:
        return statistics.median(sample.rate for sample in self.raw)

    @property
    def sdk_rate(self) -> float:
        return statistics.median(sample.rate for sample in self.sdk)

    @property
    def raw_cpu_us(self) -> float:
        return statistics.median(sample.cpu_us for sample in self.raw)

    @property
    def sdk_cpu_us(self) -> float:
        return statistics.median(sample.cpu_us for sample in self.sdk)

    @property
    def ratio(self) -> float:
        return self.sdk_rate / self.raw_rate


# -- the server -------------------------------------------------------------------------------------------


@contextmanager
def running_server(plan: Plan) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``tidings server`` on a free port with a retention big enough for every message; yields its endpoint."""
    data_dir = Path(tempfile.mkdtemp(prefix="tidings-bench-sdk-"))
    retention_bytes = max(64 * 1024 * 1024, plan.messages * 256)
    command = [
        sys.executable, "-m", "tidings", "server", "--port", "0", "--http-port", "0",
        "--data-dir", str(data_dir), "--create-cache", CACHE,
        "--retention-messages", str(plan.messages), "--retention-size", str(retention_bytes),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    try:
        endpoint = _wait_listening(process, process.stderr)
        threading.Thread(target=_drain, args=(process.stderr,), daemon=True).start()
        yield endpoint, process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(data_dir, ignore_errors=True)


def _drain(stream: IO[str]) -> None:
    for _line in stream:
        pass


def _wait_listening(process: subprocess.Popen[str], stderr: IO[str]) -> str:
    log: list[str] = []
    deadline = time.monotonic() + 60
    for line in stderr:
        log.append(line)
        match = _LISTENING.search(line)
        if match:
            return f"{match.group(1)}:{match.group(2)}"
        if time.monotonic() > deadline:
            break
    process.kill()
    raise RuntimeError("the server did not start:\n" + "".join(log))


# -- measurements -----------------------------------------------------------------------------------------


async def fill_topic(stub: cachepubsub_pb2_grpc.PubsubStub, topic: str, count: int) -> int:
    """Publish ``count`` messages (64 in flight) and return the topic's sequence page."""
    numbers = iter(range(count))

    async def worker() -> None:
        for number in numbers:
            request = pb._PublishRequest(
                cache_name=CACHE, topic=topic, value=pb._TopicValue(binary=PAYLOAD + str(number).encode())
            )
            await stub.Publish(request, timeout=30, metadata=METADATA)

    await asyncio.gather(*(worker() for _ in range(64)))
    call = stub.Subscribe(pb._SubscriptionRequest(cache_name=CACHE, topic=topic, resume_at_topic_sequence_number=1))
    while (message := await call.read()).WhichOneof("kind") != "item":
        pass
    call.cancel()
    return int(message.item.sequence_page)


async def read_raw(stub: cachepubsub_pb2_grpc.PubsubStub, topic: str, page: int, count: int) -> float:
    """Seconds a raw stub takes to receive ``count`` items, replayed from sequence number 1."""
    request = pb._SubscriptionRequest(
        cache_name=CACHE, topic=topic, resume_at_topic_sequence_number=1, sequence_page=page
    )
    call = stub.Subscribe(request, metadata=METADATA)
    first = await call.read()
    assert first.WhichOneof("kind") == "heartbeat"
    received = 0
    started = time.perf_counter()
    while received < count:
        message = await call.read()
        if message.WhichOneof("kind") == "item":
            received += 1
    elapsed = time.perf_counter() - started
    call.cancel()
    return elapsed


async def read_sdk(client: TopicClientAsync, topic: str, page: int, count: int) -> float:
    """Seconds a `TopicClientAsync` subscription takes to yield ``count`` items, replayed from 1."""
    subscription = await client.subscribe(CACHE, topic, resume_at_sequence_number=1, resume_at_sequence_page=page)
    assert isinstance(subscription, TopicSubscribe.SubscriptionAsync), subscription
    received = 0
    started = time.perf_counter()
    async for item in subscription:
        if type(item) is TopicSubscriptionItem.Binary:
            received += 1
            if received == count:
                break
        else:
            raise RuntimeError(f"unexpected {item!r}")
    elapsed = time.perf_counter() - started
    subscription.unsubscribe()
    return elapsed


async def publish_many(publish: Callable[[], Awaitable[None]], calls: int, in_flight: int) -> float:
    """Seconds ``in_flight`` concurrent callers take to make ``calls`` publish calls in all."""
    remaining = iter(range(calls))

    async def worker() -> None:
        for _ in remaining:
            await publish()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return time.perf_counter() - started


async def sample(operations: int, run: Callable[[], Awaitable[float]]) -> Sample:
    """Run one trial (``run`` returns the wall-clock seconds of its measured part)."""
    cpu = time.process_time()
    seconds = await run()
    return Sample(operations / seconds, 1e6 * (time.process_time() - cpu) / operations)


async def compare(
    scenario: str,
    unit: str,
    trials: int,
    operations: int,
    raw: Callable[[], Awaitable[float]],
    sdk: Callable[[], Awaitable[float]],
    log: Callable[[str], None],
) -> Comparison:
    """Alternate raw and SDK trials (swapping which goes first each time, so drift favours neither)."""
    raw_samples: list[Sample] = []
    sdk_samples: list[Sample] = []
    for trial in range(trials):
        order = [(raw, raw_samples), (sdk, sdk_samples)]
        for run, samples in order if trial % 2 == 0 else reversed(order):
            samples.append(await sample(operations, run))
        log(
            f"  {scenario} trial {trial + 1}: raw {raw_samples[-1].rate:,.0f}/s ({raw_samples[-1].cpu_us:.0f} us CPU), "
            f"sdk {sdk_samples[-1].rate:,.0f}/s ({sdk_samples[-1].cpu_us:.0f} us CPU)"
        )
    return Comparison(scenario, unit, raw_samples, sdk_samples)


async def measure(endpoint: str, plan: Plan, log: Callable[[str], None]) -> list[Comparison]:
    comparisons: list[Comparison] = []
    async with grpc.aio.insecure_channel(endpoint) as channel, TopicClientAsync(endpoint, timeout=30) as client:
        stub = cachepubsub_pb2_grpc.PubsubStub(channel)
        await stub.Publish(
            pb._PublishRequest(cache_name=CACHE, topic="warm-up", value=pb._TopicValue(text="x")), timeout=30
        )
        assert isinstance(await client.publish(CACHE, "warm-up", "x"), TopicPublish.Success)

        log(f"filling a topic with {plan.messages} messages")
        page = await fill_topic(stub, "replay", plan.messages)
        comparisons.append(
            await compare(
                f"subscribe: messages received (replay of {plan.messages:,} retained 64-byte messages)",
                "messages/s",
                plan.subscribe_trials,
                plan.messages,
                lambda: read_raw(stub, "replay", page, plan.messages),
                lambda: read_sdk(client, "replay", page, plan.messages),
                log,
            )
        )

        async def publish_raw() -> None:
            request = pb._PublishRequest(cache_name=CACHE, topic="publish", value=pb._TopicValue(binary=PAYLOAD))
            await stub.Publish(request, timeout=30, metadata=METADATA)

        async def publish_sdk() -> None:
            response = await client.publish(CACHE, "publish", PAYLOAD)
            if type(response) is not TopicPublish.Success:
                raise RuntimeError(response)

        for in_flight in (1, 32):
            comparisons.append(
                await compare(
                    f"publish: calls, {in_flight} in flight",
                    "calls/s",
                    plan.publish_trials,
                    plan.publish_calls,
                    lambda: publish_many(publish_raw, plan.publish_calls, in_flight),  # noqa: B023  # awaited at once
                    lambda: publish_many(publish_sdk, plan.publish_calls, in_flight),  # noqa: B023
                    log,
                )
            )
    return comparisons


# -- report -----------------------------------------------------------------------------------------------


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} CPUs; Python {platform.python_version()}, grpcio {grpc.__version__}, "
        f"uvloop {uvloop.__version__}, tidings {tidings_version()}"
    )


def tidings_version() -> str:
    from importlib.metadata import version

    return version("tidings")


def load_average() -> float:
    """The 1-minute load average (other work on the machine makes every figure noisier)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def render(comparisons: list[Comparison], plan: Plan, quick: bool, load: tuple[float, float]) -> str:
    rows = [
        "| scenario | raw grpc.aio stub | tidings SDK | SDK / raw | client CPU per operation, raw / SDK | target |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for comparison in comparisons:
        verdict = "met" if comparison.ratio >= TARGET else "**missed**"
        rows.append(
            f"| {comparison.scenario} | {comparison.raw_rate:,.0f} {comparison.unit} | {comparison.sdk_rate:,.0f} "
            f"{comparison.unit} | {comparison.ratio:.2f}x | {comparison.raw_cpu_us:.0f} us / "
            f"{comparison.sdk_cpu_us:.0f} us | >= {TARGET}x: {verdict} |"
        )
    command = "python bench/sdk.py" + (" --quick" if quick else "")
    return "\n".join(
        [
            "## Python SDK overhead",
            "",
            f"`{command}` on {machine()}. One `tidings server` subprocess; the SDK (`TopicClientAsync`) and a raw "
            "`grpc.aio` `PubsubStub` each on their own connection, on one uvloop event loop, trials alternating; "
            f"medians of {plan.subscribe_trials} subscribe and {plan.publish_trials} publish trials (client CPU: "
            "this process's user + system time, all threads, per message or call). "
            "*subscribe* replays the same retained stream from sequence number 1 to each reader; *publish* "
            f"makes {plan.publish_calls:,} calls per trial with the same request fields, timeout and "
            f"`authorization` header. 1-minute load average {load[0]:.1f} at the start, {load[1]:.1f} at the end: "
            "the ratios, measured back to back, matter more than the absolute rates. Method and code: `bench/sdk.py`.",
            "",
            *rows,
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer messages and trials")
    parser.add_argument("--write", type=Path, metavar="FILE", help="replace the SDK section of FILE (Markdown)")
    options = parser.parse_args(argv)
    plan = QUICK if options.quick else FULL

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    load_at_start = load_average()
    with running_server(plan) as (endpoint, _process):
        log(f"tidings server on {endpoint}")
        comparisons = uvloop.run(measure(endpoint, plan, log))
    section = render(comparisons, plan, options.quick, (load_at_start, load_average()))
    print(section)
    if options.write is not None:
        write_section(options.write, "sdk", section)
        log(f"wrote {options.write}")
    return 0 if all(comparison.ratio >= TARGET for comparison in comparisons) else 1


if __name__ == "__main__":
    sys.exit(main())
