"""The tidings pytest plugin: a real tidings server per test, as the ``tidings_server`` fixture.

Installed with tidings (entry point ``pytest11``), so the fixture is available without configuration; disable
it with ``-p no:tidings``. Override ``tidings_server_options`` to pass arguments to `tidings.testing.run_server`::

    @pytest.fixture
    def tidings_server_options():
        return {"create_caches": ["orders"]}
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tidings.testing import RunningServer


@pytest.fixture
def tidings_server_options() -> dict[str, Any]:
    """Keyword arguments of `tidings.testing.run_server` for `tidings_server` (none by default)."""
    return {}


@pytest.fixture
def tidings_server(tmp_path: Path, tidings_server_options: dict[str, Any]) -> Iterator[RunningServer]:
    """A tidings server on a free loopback port with a fresh data directory, stopped after the test.

    Yields a `tidings.testing.RunningServer`: ``.endpoint`` (``host:port``), ``.host``, ``.port``.
    """
    from tidings.testing import run_server

    options = {"data_dir": tmp_path / "tidings-data", **tidings_server_options}
    with run_server(**options) as server:
        yield server
