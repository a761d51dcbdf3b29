"""The data directory: one server at a time (`DataDirectoryLock`), and one-line `DataDirectoryError` s."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from tidings.server.store import DataDirectoryError, DataDirectoryLock
from tidings.server.store.sqlite import SqliteStore


def test_data_directory_lock_refuses_a_second_holder_naming_the_first_pid(tmp_path: Path) -> None:
    # Arrange
    first = DataDirectoryLock(tmp_path / "data")
    first.acquire()
    second = DataDirectoryLock(tmp_path / "data")

    # Act / Assert
    with pytest.raises(DataDirectoryError) as refused:
        second.acquire()
    assert str(refused.value).startswith(f"data directory {tmp_path / 'data'}: in use by another tidings server")
    assert f"(pid {os.getpid()})" in str(refused.value)

    # Act / Assert: released, it can be taken again.
    first.release()
    first.release()  # idempotent
    second.acquire()
    assert (tmp_path / "data" / "tidings.lock").read_text() == f"{os.getpid()}\n"
    second.release()


def test_data_directory_lock_names_the_directory_and_reason_when_it_cannot_be_made(tmp_path: Path) -> None:
    # Arrange
    (tmp_path / "file").write_text("")

    # Act / Assert
    with pytest.raises(DataDirectoryError, match=r"data directory .*file/data: Not a directory"):
        DataDirectoryLock(tmp_path / "file" / "data").acquire()


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (
            PermissionError(13, "Permission denied", "/srv/tidings/tidings.lock"),
            "Permission denied: /srv/tidings/tidings.lock",
        ),
        (OSError(30, "Read-only file system"), "Read-only file system"),
        (sqlite3.OperationalError("attempt to write a readonly database"), "attempt to write a readonly database"),
    ],
    ids=["permission", "read-only-fs", "read-only-database"],
)
def test_data_directory_error_is_one_line_naming_the_directory_and_reason(
    error: OSError | sqlite3.Error, reason: str
) -> None:
    # Act
    message = str(DataDirectoryError.caused_by(Path("/srv/tidings"), error, "tidings.sqlite3"))

    # Assert
    assert message == f"data directory /srv/tidings: tidings.sqlite3: {reason}"
    assert "\n" not in message


async def test_sqlite_store_reports_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    # Arrange
    (tmp_path / SqliteStore.FILENAME).write_bytes(b"not a database " * 100)

    # Act / Assert
    with pytest.raises(DataDirectoryError, match=r"tidings\.sqlite3: file is not a database"):
        await SqliteStore.open(tmp_path)
