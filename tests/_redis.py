"""Real ``redis-server`` processes for the tests, on free loopback ports (never one assumed to be running)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


def ask_node(host: str, port: int, *command: str | bytes) -> Any:
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
    """A Redis Cluster of ``masters`` masters, each with ``replicas`` replicas, every node a `RedisServer`,
    created with redis-cli. ``node_timeout_ms`` is ``cluster-node-timeout``: how long a silent master takes to be
    failed over (promotion follows it by about a second)."""

    directory: Path
    masters: int = 3
    nodes: list[RedisServer] = field(default_factory=list)
    replicas: int = 0
    node_timeout_ms: int = 2000

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
        for index in range(self.masters * (1 + self.replicas)):
            self.nodes.append(
                RedisServer(
                    self.directory / f"node{index}",
                    (
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        str(self.node_timeout_ms),
                    ),
                ).start()
            )
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        subprocess.run(
            [REDIS_CLI, "--cluster", "create", *addresses, "--cluster-replicas", str(self.replicas), "--cluster-yes"],
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
                if client.info("replication")["role"] == "slave":
                    # A replica must hold its master's data before a test fails that master over.
                    while client.info("replication").get("master_link_status") != "up":
                        if time.monotonic() > deadline:
                            raise RuntimeError("a Redis Cluster replica did not sync with its master")
                        time.sleep(0.05)
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def node_at(self, port: int) -> RedisServer:
        """The node listening on ``port``."""
        return next(node for node in self.nodes if node.port == port)

    def owner_of(self, slot: int, asking: RedisServer | None = None) -> RedisServer:
        """The master serving ``slot`` according to ``asking`` (any running node by default)."""
        for node in [asking] if asking is not None else self.running():
            for first, last, master, *_ in ask_node("127.0.0.1", node.port, "CLUSTER", "SLOTS"):
                if first <= slot <= last:
                    return self.node_at(int(master[1]))
        raise LookupError(f"no node serves slot {slot}")

    def replica_of(self, master: RedisServer) -> RedisServer:
        """One replica of ``master`` (as ``master`` sees them)."""
        node_id = ask_node("127.0.0.1", master.port, "CLUSTER", "MYID")
        replicas = ask_node("127.0.0.1", master.port, "CLUSTER", "REPLICAS", node_id)
        port = int(replicas[0].split()[1].split(b"@")[0].rsplit(b":", 1)[1])
        return self.node_at(port)

    def running(self) -> list[RedisServer]:
        """The nodes whose process runs (and is not frozen by a test)."""
        return [node for node in self.nodes if node.process is not None and node.process.poll() is None]

    def wait_for_owner(self, slot: int, owner: RedisServer, timeout: float = 30.0) -> float:
        """Wait until every running node names ``owner`` as the master of ``slot`` (a failover completed);
        returns the monotonic time it was first seen. Redis announces no event for it: ask every 20 ms."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if all(self.owner_of(slot, node).port == owner.port for node in self.running()):
                    return time.monotonic()
            except (redis.RedisError, OSError, LookupError):
                pass  # a node that is starting or restarting
            if time.monotonic() > deadline:
                raise TimeoutError(f"slot {slot} did not move to 127.0.0.1:{owner.port}")
            time.sleep(0.02)
