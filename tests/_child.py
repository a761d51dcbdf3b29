"""Child processes with a changed signal disposition or limit, started without ``preexec_fn``.

``preexec_fn`` runs Python in the forked child before it execs. The test processes run grpc-core threads, whose
fork handlers grpc skips then ("Other threads are currently calling into gRPC, skipping fork() handlers"), and
such a child can abort before it execs: in CI a server "exited with -6" on an epoll error before its first log
line. Here a short Python prelude makes the change in the new program instead, then execs the command (same
process, same pid).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

_PRELUDE = """\
import os, resource, signal, sys
open_files, command = sys.argv[1], sys.argv[2:]
signal.signal(signal.SIGINT, signal.SIG_DFL)
if open_files:
    soft, hard = map(int, open_files.split(","))
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
os.execvp(command[0], command)
"""


def prepared(command: Sequence[str], *, open_files: tuple[int, int] | None = None) -> list[str]:
    """``command`` run with SIGINT at its default action (a test run started from a background shell inherits it
    ignored, and the tests stop children with SIGINT as Ctrl-C would) and, if given, RLIMIT_NOFILE set to
    ``open_files`` (soft, hard)."""
    limits = "" if open_files is None else f"{open_files[0]},{open_files[1]}"
    return [sys.executable, "-c", _PRELUDE, limits, *command]
