"""How the ``--workers`` supervisor logs a worker's end (``server/process/_workers.py``)."""

from __future__ import annotations

import pytest

from tidings.server.process import exit_status


@pytest.mark.parametrize(
    ("exitcode", "said"),
    [
        (-9, "was killed by SIGKILL"),
        (-15, "was killed by SIGTERM"),
        (-11, "was killed by SIGSEGV"),
        (-200, "was killed by signal 200"),
        (0, "exited with status 0"),
        (1, "exited with status 1"),
        (None, "ended with an unknown status"),
    ],
)
def test_exit_status_names_the_signal_that_killed_a_worker(exitcode: int | None, said: str) -> None:
    assert exit_status(exitcode) == said
