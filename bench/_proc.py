"""Read a process's resident memory and CPU time from /proc (Linux only).

The benchmarks measure the server from outside, so the same numbers come out whatever the server is
written in: RSS from ``/proc/<pid>/status`` and user + system CPU time from ``/proc/<pid>/stat``.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_CLOCK_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    """Return the resident set size of ``pid`` in KiB (``VmRSS``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/status has no VmRSS line")


def tree_rss_kib(pid: int) -> int:
    """Return the resident set size of ``pid`` and its live child processes (a server's workers), in KiB."""
    return rss_kib(pid) + sum(tree_rss_kib(child) for child in _children(pid))


def cpu_seconds(pid: int) -> float:
    """Return the CPU time (user + system, all threads) that ``pid`` and its live child processes (a server's
    workers) have used so far, in seconds."""
    return _own_cpu_seconds(pid) + sum(cpu_seconds(child) for child in _children(pid))


def _children(pid: int) -> list[int]:
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            children += [int(child) for child in (task / "children").read_text().split()]
        except OSError:  # the thread ended, or the kernel does not list children
            continue
    return children


def _own_cpu_seconds(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    # Field 2 (comm) is parenthesised and may contain spaces: split after its closing parenthesis.
    fields = stat[stat.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / _CLOCK_TICKS_PER_SECOND


def machine_busy_seconds() -> float:
    """Return the CPU time all processes on this machine have used since boot (all cores, in seconds).

    Busy time less the server's and the load generator's tells whether something else shared the cores.
    Interrupt time is left out: loopback networking of the benchmark itself is accounted there.
    """
    with open("/proc/stat") as stat:
        fields = stat.readline().split()
    # cpu user nice system idle iowait irq softirq steal ...; steal is time another VM took from us.
    user, nice, system, steal = (int(fields[index]) for index in (1, 2, 3, 8))
    return (user + nice + system + steal) / _CLOCK_TICKS_PER_SECOND


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@contextmanager
def running(command: list[str], ready: re.Pattern[str], ready_lines: int = 1) -> Iterator[subprocess.Popen[str]]:
    """Run ``command`` until the block ends (SIGTERM); return once ``ready_lines`` stderr lines (one per worker
    of a server with ``--workers``) match ``ready``."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    log: list[str] = []
    try:
        for line in process.stderr:
            log.append(line)
            if ready.search(line):
                ready_lines -= 1
                if ready_lines == 0:
                    break
        else:
            raise RuntimeError(f"{command[2:4]} did not start:\n{''.join(log)}")
        # Keep reading its log, so that a full pipe never blocks it; the last lines are shown on failure.
        threading.Thread(target=lambda: log.extend(process.stderr or ()), daemon=True).start()
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        finally:
            process.kill()
            process.stderr.close()
