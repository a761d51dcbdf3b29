"""Durable stores for caches and other state that must survive restarts, and the data directory they live in."""

from tidings.server.store._datadir import DataDirectoryError, DataDirectoryLock

__all__ = ["DataDirectoryError", "DataDirectoryLock"]
