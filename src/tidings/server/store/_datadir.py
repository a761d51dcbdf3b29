"""The data directory: one server uses it at a time (an advisory lock), and every way it can be unusable is
one `DataDirectoryError` naming the directory and the reason."""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from pathlib import Path
from typing import Final

LOCK_FILE: Final = "tidings.lock"


class DataDirectoryError(Exception):
    """The data directory (or the store in it) cannot be used; the message is one line naming it and why."""

    def __init__(self, data_dir: Path, reason: str) -> None:
        super().__init__(f"data directory {data_dir}: {reason}")
        self.data_dir = data_dir
        self.reason = reason

    @classmethod
    def caused_by(cls, data_dir: Path, error: OSError | sqlite3.Error, what: str = "") -> DataDirectoryError:
        """The error for ``error`` met while using ``data_dir`` (``what``: the file it was about, if known)."""
        reason = reason_of(error)
        return cls(data_dir, f"{what}: {reason}" if what else reason)


def reason_of(error: OSError | sqlite3.Error) -> str:
    """What went wrong, in one line: ``OSError``'s text and file name, or SQLite's message."""
    if isinstance(error, OSError):
        text = error.strerror or str(error)
        return f"{text}: {error.filename}" if error.filename else text
    return " ".join(str(error).split()) or type(error).__name__


class DataDirectoryLock:
    """An exclusive advisory lock (``flock``) on ``<data_dir>/tidings.lock``, which holds the holder's pid.

    The kernel releases it when the process ends, so a crashed server never leaves the directory locked.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.path = data_dir / LOCK_FILE
        self._descriptor: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise `DataDirectoryError` naming the process that holds it."""
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as error:
            raise DataDirectoryError.caused_by(self.data_dir, error) from None
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(descriptor)
            os.close(descriptor)
            raise DataDirectoryError(
                self.data_dir,
                f"in use by another tidings server (pid {holder or 'unknown'}); stop it or choose another --data-dir",
            ) from None
        except OSError as error:
            os.close(descriptor)
            raise DataDirectoryError.caused_by(self.data_dir, error, f"cannot lock {LOCK_FILE}") from None
        try:
            os.ftruncate(descriptor, 0)
            os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        except OSError as error:
            os.close(descriptor)
            raise DataDirectoryError.caused_by(self.data_dir, error, LOCK_FILE) from None
        self._descriptor = descriptor

    def release(self) -> None:
        """Let go of the lock (idempotent)."""
        descriptor, self._descriptor = self._descriptor, None
        if descriptor is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(descriptor, 0)
            os.close(descriptor)


def _read_pid(descriptor: int) -> str:
    try:
        text = os.pread(descriptor, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return text if text.isdigit() else ""
