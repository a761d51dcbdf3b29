"""The curves the benchmarks draw beside their tables (matplotlib, from the ``bench`` extra).

One figure per benchmark, two panels: deliveries/s against the number of subscribers of the topic (1, 10, 100),
one line per target (transport, engine or the ceiling); and publish-to-deliver latency percentiles at 50
publishes/s to 100 subscribers, one line per target. Values are the medians over the benchmark's rounds, as in
its table.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path

SUBSCRIBERS = (1, 10, 100)
PERCENTILES = tuple((name, f"latency_{name}_ms") for name in ("p50", "p90", "p99", "max"))

Results = Mapping[str, Sequence[float]]  # metric -> its value in each round


def _median(results: Results, key: str) -> float | None:
    values = results.get(key)
    return statistics.median(values) if values else None


def draw(results: Mapping[str, Results], labels: Mapping[str, str], path: Path, title: str) -> None:
    """Draw the two panels for the targets in ``labels`` (key -> legend) into the PNG ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (fanout, latency) = plt.subplots(1, 2, figsize=(11, 4.2))
    for target, label in labels.items():
        per_target = results.get(target, {})
        points = [(n, v) for n in SUBSCRIBERS if (v := _median(per_target, f"fanout{n}_per_s")) is not None]
        if points:
            fanout.plot(*zip(*points, strict=True), marker="o", label=label)
        marks = [(name, v) for name, key in PERCENTILES if (v := _median(per_target, key)) is not None]
        if marks:
            latency.plot(*zip(*marks, strict=True), marker="o", label=label)
    fanout.set(xscale="log", xlabel="subscribers of the topic", ylabel="deliveries/s", title="fan-out")
    fanout.set_xticks(SUBSCRIBERS, [str(n) for n in SUBSCRIBERS])
    fanout.set_ylim(bottom=0)
    latency.set(yscale="log", xlabel="percentile", ylabel="ms", title="publish-to-deliver, 50/s x 100 subscribers")
    for axes in (fanout, latency):
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize="small")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def draw_scale(
    opening: Sequence[tuple[float, int, float]],
    idle_cores: Sequence[float],
    path: Path,
    title: str,
    *,
    rss_target_kib: float | None = None,
    idle_target: float | None = None,
) -> None:
    """Three panels of a scale run into the PNG ``path``: streams open against time while opening; the server's
    RSS growth against streams open (with the per-subscription target's slope, if any); and the server's CPU in
    each second of the idle window (with its target, if any). ``opening`` holds (seconds, streams open, RSS
    growth in KiB) readings; ``idle_cores`` the cores used in each idle second."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (opened, memory, idle) = plt.subplots(1, 3, figsize=(14, 4.2))
    seconds = [sample[0] for sample in opening]
    streams = [sample[1] for sample in opening]
    rss_mib = [sample[2] / 1024 for sample in opening]
    opened.plot(seconds, streams, marker=".")
    opened.set(xlabel="seconds since the first request", ylabel="streams open", title="opening")
    memory.plot(streams, rss_mib, marker=".", label="server RSS growth")
    if rss_target_kib is not None and streams:
        top = max(streams)
        memory.plot([0, top], [0, top * rss_target_kib / 1024], linestyle="--", label=f"{rss_target_kib:g} KiB each")
    memory.set(xlabel="streams open", ylabel="MiB", title="memory")
    idle.plot(range(1, len(idle_cores) + 1), [100 * cores for cores in idle_cores], marker=".", label="server")
    if idle_target is not None:
        idle.axhline(100 * idle_target, linestyle="--", color="tab:red", label=f"target {100 * idle_target:g}%")
    idle.set(xlabel="second of the idle window", ylabel="% of a core", title="idle: heartbeats only")
    for axes in (opened, memory, idle):
        axes.set_ylim(bottom=0)
        axes.grid(True, alpha=0.3)
    for axes in (memory, idle):
        axes.legend(fontsize="small")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
