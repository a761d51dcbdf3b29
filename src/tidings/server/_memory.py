"""Give memory freed after a burst back to the operating system.

glibc's allocator keeps freed memory in its arenas for reuse: after a burst of large requests (or of many
connections) the process's resident size stays at its peak although Python and grpcio freed everything.
`malloc_trim` returns the free pages; the server calls it when its resident size has grown since the last
trim, checked every few seconds, off the event loop. Elsewhere than glibc this does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import os
from collections.abc import Callable
from typing import Final

logger = logging.getLogger("tidings.server")

# Trim when the resident size grew by this much since the last trim (or the start).
TRIM_GROWTH: Final = 16 * 1024 * 1024
_PAGE_SIZE: Final = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes() -> int:
    """This process's resident set size (0 where ``/proc`` is not available)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return 0


def _malloc_trim() -> Callable[[], object] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: trim(0)


async def return_freed_memory(interval: float) -> None:
    """Every ``interval`` seconds, trim the allocator if the resident size grew by `TRIM_GROWTH`; forever."""
    trim = _malloc_trim()
    if trim is None or not resident_bytes():
        return
    baseline = resident_bytes()
    while True:
        await asyncio.sleep(interval)
        if resident_bytes() > baseline + TRIM_GROWTH:
            await asyncio.to_thread(trim)
            baseline = resident_bytes()
