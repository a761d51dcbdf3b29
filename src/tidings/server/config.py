"""Server settings: what ``tidings server`` flags and ``TIDINGS_*`` variables configure."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from tidings.server.core import Limits


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/tidings``, else ``~/.local/share/tidings``."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "tidings"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the composition root needs to build a server."""

    host: str = "127.0.0.1"
    port: int = 8080
    http_port: int = 8081
    data_dir: Path = field(default_factory=default_data_dir)
    create_caches: tuple[str, ...] = ()
    limits: Limits = field(default_factory=Limits)
    heartbeat_interval: float = 10.0
    http_long_poll_timeout: float = 30.0
    shutdown_grace: float = 5.0
    log_level: str = "info"

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError("port must be 0 to 65535")
        if not 0 <= self.http_port <= 65535:
            raise ValueError("http_port must be 0 to 65535")
        if not (0 < self.heartbeat_interval < math.inf):
            raise ValueError("heartbeat_interval must be positive and finite")
        if not (0 < self.http_long_poll_timeout < math.inf):
            raise ValueError("http_long_poll_timeout must be positive and finite")
