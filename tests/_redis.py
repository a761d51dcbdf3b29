"""Real ``redis-server`` processes for the tests, on free loopback ports (never one assumed to be running)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

START_TIMEOUT = 20.0
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"


def free_port(cluster_bus: bool = False) -> int:
    """A free loopback port; with ``cluster_bus``, one whose cluster bus port (+10000) is free too."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if not cluster_bus:
            return port
        if port + 10000 > 65535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


def ask_node(host: str, port: int, *command: str) -> object:
    """One command on one node, its RESP reply as parsed from the wire (no redis-py reply callback applies)."""
    connection = redis.Connection(host=host, port=port, protocol=2)
    try:
        connection.send_command(*command)
        return connection.read_response()
    finally:
        connection.disconnect()


@dataclass
class RedisServer:
    """A ``redis-server`` without persistence (a restart loses every key) in ``directory``."""

    directory: Path
    extra_args: tuple[str, ...] = ()
    port: int = 0
    process: subprocess.Popen[str] | None = None
    log: list[str] = field(default_factory=list)
    _drain: threading.Thread = field(default_factory=threading.Thread)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> RedisServer:
        """Start (again, on the same port after `stop`) and return once it accepts connections."""
        if not self.port:
            self.port = free_port(cluster_bus="--cluster-enabled" in self.extra_args)
        self.directory.mkdir(parents=True, exist_ok=True)
        command = [
            REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(self.directory), "--logfile", "", *self.extra_args,
        ]  # fmt: skip
        process = self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        ready = threading.Event()

        def drain() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                self.log.append(line)
                if "Ready to accept connections" in line:
                    ready.set()

        self._drain = threading.Thread(target=drain, daemon=True)
        self._drain.start()
        if not ready.wait(START_TIMEOUT):
            self.stop()
            raise RuntimeError(f"redis-server did not start: {''.join(self.log)}")
        return self

    def client(self) -> redis.Redis:
        """A plain client, for arranging and inspecting what tests need."""
        return redis.Redis(host="127.0.0.1", port=self.port, protocol=2)

    def stop(self) -> None:
        """Stop the server (its data is lost: there is no persistence)."""
        process, self.process = self.process, None
        if process is not None:
            if process.poll() is None:
                process.kill()
            process.wait(10)
            self._drain.join(10)
            if process.stdout is not None:
                process.stdout.close()


@dataclass
class RedisCluster:
    """A Redis Cluster of ``masters`` masters (no replicas), each a `RedisServer`, created with redis-cli."""

    directory: Path
    masters: int = 3
    nodes: list[RedisServer] = field(default_factory=list)

    @property
    def url(self) -> str:
        """Any node's URL (the first one's)."""
        return self.nodes[0].url

    def start(self) -> RedisCluster:
        """Start the nodes and join them; on any failure, stop the nodes already started."""
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> RedisCluster:
        for index in range(self.masters):
            self.nodes.append(
                RedisServer(
                    self.directory / f"node{index}",
                    (
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "2000",
                    ),
                ).start()
            )
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        subprocess.run(
            [REDIS_CLI, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        # redis-cli waits for the nodes to agree on the configuration; every node must also report the slots
        # covered. There is no notification for that: ask, briefly, a bounded number of times.
        deadline = time.monotonic() + START_TIMEOUT
        for node in self.nodes:
            with node.client() as client:
                while client.cluster("info")["cluster_state"] != "ok":
                    if time.monotonic() > deadline:
                        raise RuntimeError("the Redis Cluster did not reach state ok")
                    time.sleep(0.05)
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
