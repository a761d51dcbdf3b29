"""The CLI imports what the command it runs uses, and no more (`cli._main`): start-up time is import time."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# Run in a fresh interpreter: what this test process imported already would hide what a command imports.
_PROBE = """
import json, sys
from tidings.cli import main
try:
    main(sys.argv[1:], standalone_mode=False)
finally:
    print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def _imported_by(*args: str) -> set[str]:
    done = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, timeout=60, check=True)
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


def _loaded(modules: set[str], package: str) -> bool:
    return any(name == package or name.startswith(package + ".") for name in modules)


def test_server_command_loads_neither_the_sdk_client_nor_redis_py() -> None:
    modules = _imported_by("server", "--help")
    assert "tidings.cli._server" in modules
    assert not _loaded(modules, "tidings.client")
    assert not _loaded(modules, "redis")


def test_memory_backend_does_not_load_redis_py() -> None:
    probe = (
        "import sys\n"
        "from tidings.server.backend import open_backend\n"
        "from tidings.server.config import Settings\n"
        "open_backend(Settings(data_dir=sys.argv[1]))\n"
        "print(any(name == 'redis' or name.startswith('redis.') for name in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe, "unused"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


@pytest.mark.parametrize("command", ["publish", "subscribe", "cache", "webhook"])
def test_client_commands_do_not_load_the_server(command: str) -> None:
    modules = _imported_by(command, "--help")
    assert not _loaded(modules, "tidings.server")
    assert not _loaded(modules, "redis")


def test_the_server_itself_loads_neither_the_sdk_client_nor_redis_py() -> None:
    # `tidings server` imports the app when it runs (not for --help): the app's own imports.
    probe = "import json, sys, tidings.server.app; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    modules = set(json.loads(done.stdout))
    assert "tidings.server.app" in modules
    assert not _loaded(modules, "tidings.client")
    assert not _loaded(modules, "redis")


def test_help_lists_every_command_sorted() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tidings", "--help"], capture_output=True, text=True, timeout=60, check=True
    )
    listed = [line.split()[0] for line in done.stdout.split("Commands:")[1].strip().splitlines()]
    assert listed == ["cache", "key", "publish", "server", "subscribe", "token", "webhook"]
