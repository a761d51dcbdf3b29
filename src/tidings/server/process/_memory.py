"""Give memory freed after a burst back to the operating system.

glibc's allocator keeps freed memory in its arenas for reuse: after a burst of large requests (or of many
connections) the process's resident size stays at its peak although Python and grpcio freed everything.
Every few seconds the server asks the allocator how much it holds free (``mallinfo2``), and when that grew
by `TRIM_GROWTH` since it last looked, returns the free pages (``malloc_trim``), off the event loop. Where
the C library has neither (not glibc, or glibc before 2.33), this does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging
from dataclasses import dataclass
from typing import Final

logger = logging.getLogger("tidings.server")

# Trim when the allocator holds this much more free memory than it did after the last trim.
TRIM_GROWTH: Final = 16 * 1024 * 1024


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks")
    ] + [("fordblks", ctypes.c_size_t), ("keepcost", ctypes.c_size_t)]


@dataclass(frozen=True)
class Allocator:
    """glibc's allocator: how much it holds free, and a way to give that back."""

    _libc: ctypes.CDLL

    @classmethod
    def load(cls) -> Allocator | None:
        """The C library's allocator, if it has ``mallinfo2`` and ``malloc_trim``; else None."""
        name = ctypes.util.find_library("c")
        if name is None:
            return None
        try:
            libc = ctypes.CDLL(name)
            libc.mallinfo2.restype = _MallInfo2
            libc.malloc_trim.argtypes = [ctypes.c_size_t]
            libc.malloc_trim.restype = ctypes.c_int
        except (OSError, AttributeError):
            return None
        return cls(libc)

    def free_bytes(self) -> int:
        """Bytes the allocator holds in free chunks (all arenas)."""
        info: _MallInfo2 = self._libc.mallinfo2()
        return int(info.fordblks)

    def trim(self) -> None:
        """Return free pages to the system."""
        self._libc.malloc_trim(0)


async def return_freed_memory(interval: float) -> None:
    """Every ``interval`` seconds, trim the allocator when its free memory grew by `TRIM_GROWTH`; forever."""
    allocator = Allocator.load()
    if allocator is None:
        return
    reference = allocator.free_bytes()
    while True:
        await asyncio.sleep(interval)
        free = await asyncio.to_thread(allocator.free_bytes)
        if free > reference + TRIM_GROWTH:
            await asyncio.to_thread(allocator.trim)
            # Trimmed chunks still count as free: what follows is measured from here.
            reference = await asyncio.to_thread(allocator.free_bytes)
            logger.debug("returned %.0f MiB of freed memory to the system", free / 2**20)
        else:
            reference = min(reference, free)


def freeze_startup_heap() -> None:
    """Put what is alive once the server has started (modules, protobuf descriptors, the server's own objects:
    hundreds of thousands) beyond the garbage collector's full collections.

    Retained messages and subscriptions survive long enough to trigger a full collection every second or so
    under load; each scanned the whole start-up heap for 30-50 ms on the event loop (the p99 publish-to-deliver
    latency of docs/performance.md). Frozen, those collections scan only what came after start-up. Only a
    process that tidings owns does this (``tidings server`` and its workers), never an embedding application.
    """
    gc.collect()
    gc.freeze()
    logger.debug("garbage collector: %d start-up objects frozen", gc.get_freeze_count())
