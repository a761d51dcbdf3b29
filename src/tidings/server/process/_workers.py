"""``tidings server --workers N``: N server processes on the same ports, supervised by the one started.

Each worker is a whole server (its own event loop, Redis connections and subscriptions) bound with SO_REUSEPORT,
so the kernel spreads new connections over them; they share topics through Redis. The supervisor prepares what
must be created once (the admin key file), starts the workers, restarts one that dies (logged with its exit
status or the signal that killed it, with a backoff when it dies young), and on SIGTERM or SIGINT asks every
worker to drain and waits for them. Workers are titled ``tidings worker N`` in ``ps`` (with setproctitle).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from multiprocessing.context import SpawnContext
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

import setproctitle

from tidings.server.config import Settings
from tidings.server.process._addresses import refuse_busy_port
from tidings.server.process._logs import LogFormat, configure_logging, logging_configuration

logger = logging.getLogger("tidings.server")

_YOUNG = 5.0  # a worker that dies within this many seconds of starting is restarted after a backoff
_MAX_BACKOFF = 30.0
_ORPHAN_CHECK = 0.5  # how often a worker checks that its supervisor is still there

# What a worker runs: `tidings.server.app.serve` (passed in, so that this module does not import the app).
Serve = Callable[[Settings], Coroutine[Any, Any, None]]


def supervise(settings: Settings, serve: Serve) -> None:
    """Run ``settings.workers`` workers, each running ``serve(settings)``, until SIGTERM or SIGINT (blocking)."""
    # The workers bind with SO_REUSEPORT, which would share a port another server holds: check it once here.
    refuse_busy_port(settings.host, settings.port)
    if settings.http_port:
        refuse_busy_port(settings.host, settings.http_port)
    settings = _with_fixed_port(settings)
    _prepare(settings)
    wake_read, wake_write = socket.socketpair()
    wake_write.setblocking(False)
    workers = _Workers(settings, serve)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        workers.stopping = True

    previous = {signum: signal.signal(signum, on_signal) for signum in (signal.SIGTERM, signal.SIGINT)}
    previous_fd = signal.set_wakeup_fd(wake_write.fileno())
    try:
        logger.info("tidings supervising %d workers (pid %d)", settings.workers, os.getpid())
        workers.run(wake_read)
    finally:
        workers.stop()
        signal.set_wakeup_fd(previous_fd)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        wake_read.close()
        wake_write.close()
    logger.info("tidings workers stopped")


class _Workers:
    """The worker processes of one supervisor: started, restarted when they die (with a backoff when they die
    young), and stopped together."""

    def __init__(self, settings: Settings, serve: Serve) -> None:
        self._settings = settings
        self._serve = serve
        self._context: SpawnContext = multiprocessing.get_context("spawn")
        self._logging = logging_configuration()
        self._running: dict[int, tuple[BaseProcess, float]] = {}
        self._failures: dict[int, int] = {}
        self._restart_at: dict[int, float] = {}
        self.stopping = False

    def run(self, wake: socket.socket) -> None:
        """Start every worker, then restart those that die until `stopping` (a signal writes to ``wake``)."""
        for index in range(self._settings.workers):
            self._start(index)
        while not self.stopping:
            now = time.monotonic()
            timeout = max(0.0, min(self._restart_at.values()) - now) if self._restart_at else None
            multiprocessing.connection.wait([p.sentinel for p, _ in self._running.values()] + [wake], timeout)
            with contextlib.suppress(BlockingIOError):
                wake.setblocking(False)
                wake.recv(4096)
            if self.stopping:
                break
            self._reap(time.monotonic())

    def _start(self, index: int) -> None:
        level, log_format, third_party = self._logging
        process = self._context.Process(
            target=_worker,
            args=(self._settings, index, level, log_format, third_party, os.getpid(), self._serve),
            name=f"tidings-worker-{index}",
        )
        process.start()
        self._running[index] = (process, time.monotonic())
        logger.info("worker %d started (pid %s)", index, process.pid)

    def _reap(self, now: float) -> None:
        """Schedule the restart of each worker that died; start those whose restart is due."""
        for index, (process, started) in list(self._running.items()):
            if process.is_alive():
                continue
            process.join()
            del self._running[index]
            young = now - started < _YOUNG
            self._failures[index] = self._failures.get(index, 0) + 1 if young else 0
            delay = min(_MAX_BACKOFF, 2.0 ** self._failures[index] - 1) if young else 0.0
            logger.error(
                "worker %d (pid %s) %s; restarting it in %.0f s", index, process.pid, exit_status(process.exitcode),
                delay,
            )  # fmt: skip
            self._restart_at[index] = now + delay
        for index, when in list(self._restart_at.items()):
            if when <= now:
                del self._restart_at[index]
                self._start(index)

    def stop(self) -> None:
        """Ask every worker to drain (SIGTERM) and wait for them; kill those still running at the deadline."""
        for process, _ in self._running.values():
            if process.is_alive():
                process.terminate()  # SIGTERM: the worker drains gracefully
        # Each worker drains (--drain-timeout), then has the shutdown grace; one deadline for them all.
        deadline = time.monotonic() + self._settings.drain_timeout + self._settings.shutdown_grace + 10
        for process, _ in self._running.values():
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()


def exit_status(exitcode: int | None) -> str:
    """How a worker ended, for the log: ``exited with status 1``, ``was killed by SIGKILL`` (multiprocessing
    reports a signal as its negative number)."""
    if exitcode is None:
        return "ended with an unknown status"
    if exitcode >= 0:
        return f"exited with status {exitcode}"
    try:
        name = signal.Signals(-exitcode).name
    except ValueError:
        name = f"signal {-exitcode}"
    return f"was killed by {name}"


def _with_fixed_port(settings: Settings) -> Settings:
    """Workers must agree on the port: pick a free one for ``--port 0``."""
    if settings.port:
        return settings
    with socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET) as probe:
        probe.bind((settings.host.strip("[]"), 0))
        return dataclasses.replace(settings, port=probe.getsockname()[1])


def _prepare(settings: Settings) -> None:
    """Create once what each worker would otherwise race to create: the admin key file."""
    from tidings.server.auth import load_or_create_admin_key
    from tidings.server.backend import open_backend
    from tidings.server.core import Unavailable

    async def prepare() -> None:
        store = await open_backend(settings).open_store()
        try:
            await load_or_create_admin_key(settings.data_dir, store)
        finally:
            await store.close()

    try:
        asyncio.run(prepare())
    except Unavailable as error:
        raise OSError(f"cannot use {settings.redis_flag}: {error.message}") from None


def _worker(
    settings: Settings, index: int, level: str, log_format: LogFormat, third_party: bool, supervisor: int,
    serve: Serve,
) -> None:  # fmt: skip
    """A worker process: one server on its own loop (it handles SIGTERM and SIGINT by draining)."""
    name_process(f"tidings worker {index}", f"tidings-w{index}")
    configure_logging(level, log_format, worker=index, third_party=third_party)
    _drain_when_orphaned(supervisor, index)
    import uvloop

    try:
        uvloop.run(serve(settings))
    except (OSError, ValueError) as error:  # one line, as `tidings server` says it
        logger.error("%s", error)
        raise SystemExit(1) from None


def name_process(title: str, short_name: str) -> None:
    """Show this process as ``title`` in ``ps`` / ``top`` instead of ``python -B -c from multiprocessing...``,
    and as ``short_name`` (at most 15 characters, the kernel's limit) where only the command name is shown."""
    setproctitle.setproctitle(title)
    # After setproctitle, which may set the command name to its title cut at 15 characters.
    with contextlib.suppress(OSError), open("/proc/self/comm", "w", encoding="ascii") as comm:
        comm.write(short_name[:15])


def _drain_when_orphaned(supervisor: int, index: int) -> None:
    """Drain (SIGTERM to itself) when the supervisor is gone without stopping the workers (SIGKILL, a crash):
    otherwise the workers would go on serving the ports, unsupervised, until someone finds them."""

    def watch() -> None:
        while os.getppid() == supervisor:
            time.sleep(_ORPHAN_CHECK)
        logger.error("worker %d: the supervisor (pid %d) is gone; draining and stopping", index, supervisor)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="tidings-orphan-watch", daemon=True).start()
