"""The process's open-files limit, and the connections per transport it leaves room for.

Every connection holds a file descriptor; a process at its limit can accept nothing, so one transport flooded
with idle connections would starve the other. The server raises its soft limit to the hard one at start and
caps each transport's connections well below it.
"""

from __future__ import annotations

import logging
import resource
from typing import Final

logger = logging.getLogger("tidings.server")

# Descriptors kept for everything but connections (store, logs, the event loop, Redis, webhooks, ...).
_RESERVED_MIN: Final = 64
# Without --max-connections, no transport holds more than this many connections.
DEFAULT_MAX_CONNECTIONS: Final = 10_000


def open_files_limit() -> int:
    """The soft RLIMIT_NOFILE (descriptors this process may open)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def raise_open_files_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit; (before, after). Unchanged if the system refuses."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft == hard:
        return soft, soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        return soft, soft
    return soft, hard


def max_connections_for(limit: int) -> int:
    """The most connections each of the two transports may hold with ``limit`` open files."""
    reserved = max(_RESERVED_MIN, limit // 8)
    return max(1, (limit - reserved) // 2)


def connections_per_transport(requested: int | None) -> int:
    """Connections allowed per transport: ``requested`` (``--max-connections``; None: `DEFAULT_MAX_CONNECTIONS`),
    within what the open-files limit allows (logged)."""
    limit = open_files_limit()
    allowed = max_connections_for(limit)
    if requested is not None and requested > allowed:
        logger.warning(
            "--max-connections %d does not fit the open-files limit of %d; using %d per transport",
            requested,
            limit,
            allowed,
        )
    max_connections = min(requested or DEFAULT_MAX_CONNECTIONS, allowed)
    logger.info("at most %d connections per transport (open-files limit %d)", max_connections, limit)
    return max_connections
