"""Every code block in README.md and docs/*.md runs, as written, against a real server.

For doc authors — what happens to a fenced block:

- ```python (or py) runs in a fresh ``python`` process. Top-level ``await`` / ``async with`` is allowed (run as
  ``python -m asyncio`` would). A block that defines a function must use it: an ``async def main()`` that is
  never called is a failure, not a pass. A block whose first line is ``# test_<name>.py`` is a pytest module:
  it is saved under that name and run with ``python -m pytest`` (the ``tidings_server`` fixture is there).
- ```sh (or bash, shell) runs with ``bash -e -o pipefail``: every command must succeed. ``tidings`` and
  ``python3`` are the ones of the test environment; ``curl`` and ``jq`` are the system's.
- ```text, ```console, ```json and ```output are not code (output samples, data, usage synopses): not run.
- Any other language, or a fence without one, must be marked (see below) or the test fails.

Marking a block that must not run — an HTML comment on the line just above its fence (blank lines between are
allowed), which Markdown renderers do not show:

    <!-- docs-test: skip REASON -->                 not run; the reason is required and listed after the tests
    <!-- docs-test: runs-until-stopped -->          a stream that runs until Ctrl-C (``curl -N``, a subscribe
                                                    loop): it must still be running, without error, after a few
                                                    seconds; then it is interrupted

Keep skips rare: a skipped block is one nobody checks. Prefer making the example runnable.

Where blocks run: one ``tidings server`` per Markdown file, as ``make run`` starts it (a cache ``default-cache``,
anonymous access on loopback; 1 s heartbeats and a 2 s ``--http-long-poll-timeout`` to keep the tests short),
with its data directory at the default place of a fresh ``$HOME`` (``~/.local/share/tidings``, so
``admin.key`` is there). The blocks of one file run in order against the same server, so a block may rely on
what an earlier block of the same file did (a cache it created). Before running, the documented default ports
8080 (gRPC) and 8081 (HTTP) in a block are replaced by the test server's; ``TIDINGS_ENDPOINT`` points at it.
The working directory is an empty temporary one (not the data directory), holding ``photo.jpg`` (a few bytes)
for examples that publish a file.
"""

from __future__ import annotations

import ast
import os
import re
import signal
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests._child import prepared
from tests.integration._docs import NOT_CODE, PYTHON, ROOT, SHELL, DocBlock, doc_files, extract_blocks
from tests.integration._server import ServerProcess

BLOCKS = [block for path in doc_files() for block in extract_blocks(path)]
DIRECTIVES = frozenset({"skip", "runs-until-stopped"})
BLOCK_TIMEOUT = 60.0
UNTIL_STOPPED_SECONDS = 3.0
_TEST_MODULE = re.compile(r"^#\s*(test_\w+\.py)\s*$")
# Runs a python block like `python -m asyncio` would: top-level await allowed, the coroutine run to completion.
_RUNNER = """\
import ast, asyncio, inspect, sys
path = sys.argv[1]
with open(path, encoding="utf-8") as file:
    code = compile(file.read(), path, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
result = eval(code, {"__name__": "__main__", "__file__": path})
if inspect.iscoroutine(result):
    asyncio.run(result)
"""


def _is_run(block: DocBlock) -> bool:
    return block.directive != "skip" and block.language in PYTHON | SHELL


RUN_BLOCKS = [block for block in BLOCKS if _is_run(block)]


@dataclass
class DocEnvironment:
    """The server, environment and working directory the blocks of one Markdown file run in."""

    path: Path
    server: ServerProcess
    env: dict[str, str]
    workdir: Path

    def substitute(self, code: str) -> str:
        """The block with the documented default ports replaced by the test server's."""
        code = re.sub(r"\b8080\b", str(self.server.port), code)
        return re.sub(r"\b8081\b", str(self.server.http_port), code)


@pytest.fixture(scope="session")
def doc_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[Path], DocEnvironment]]:
    """A function giving the environment of a Markdown file; one server at a time (tests run file by file)."""
    current: list[DocEnvironment] = []

    def stop_current() -> None:
        if current:
            environment = current.pop()
            assert environment.server.stop() == 0, "".join(environment.server.log)

    def for_file(path: Path) -> DocEnvironment:
        if current and current[0].path == path:
            return current[0]
        stop_current()
        root = tmp_path_factory.mktemp(f"docs-{path.stem}")
        home, workdir = root / "home", root / "work"
        workdir.mkdir(parents=True)
        (workdir / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a photo \xff\xd9")
        server = ServerProcess(
            home / ".local" / "share" / "tidings",
            ("--create-cache", "default-cache", "--heartbeat-interval", "1", "--http-long-poll-timeout", "2"),
        ).start()
        env = {name: value for name, value in os.environ.items() if not name.startswith("TIDINGS_")}
        env.pop("XDG_DATA_HOME", None)
        env.update(
            HOME=str(home),
            TIDINGS_ENDPOINT=server.endpoint,
            PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            PYTHONDONTWRITEBYTECODE="1",
        )
        current.append(DocEnvironment(path, server, env, workdir))
        return current[0]

    yield for_file
    stop_current()


def test_every_block_is_run_or_marked() -> None:
    """A block is code that runs, not code by its language, or explicitly marked; nothing is silently ignored."""
    unaccounted = []
    for block in BLOCKS:
        if block.directive is not None and block.directive not in DIRECTIVES:
            unaccounted.append(f"{block.where}: unknown marker `docs-test: {block.directive}`")
        elif block.directive is None and block.language not in PYTHON | SHELL | NOT_CODE:
            what = f"```{block.language}" if block.language else "a fence without a language"
            unaccounted.append(f"{block.where}: {what} is neither run nor marked `<!-- docs-test: skip REASON -->`")
        elif block.directive == "runs-until-stopped" and block.language not in SHELL:
            unaccounted.append(f"{block.where}: runs-until-stopped is for shell blocks")
    assert not unaccounted, "\n".join(unaccounted)


def test_every_skip_has_a_reason() -> None:
    """A skipped block says why, so a reader of the list after the tests can judge it."""
    assert [block.where for block in BLOCKS if block.directive == "skip" and not block.argument] == []


def test_the_harness_finds_the_docs() -> None:
    """README.md and docs/*.md are read, and most of their blocks run (a parsing slip would run none)."""
    files = {block.path.name for block in RUN_BLOCKS}
    assert {"README.md", "sdk.md", "http.md"} <= files
    assert len(RUN_BLOCKS) >= 20


# One test per file, not per block: a file's blocks run in order on one server (later blocks use what earlier
# ones made, as a reader's would), and pytest-xdist could give the blocks of one file to different workers.
RUN_FILES = list(dict.fromkeys(block.path for block in RUN_BLOCKS))


@pytest.mark.parametrize("path", RUN_FILES, ids=[path.relative_to(ROOT).as_posix() for path in RUN_FILES])
def test_doc_blocks_run(path: Path, doc_environment: Callable[[Path], DocEnvironment]) -> None:
    """Every block of the file runs to completion (or keeps running, if it is a stream), in order, against the
    file's server; a failure names the block."""
    environment = doc_environment(path)
    for block in RUN_BLOCKS:
        if block.path == path:
            _run_block(block, environment)


def _run_block(block: DocBlock, environment: DocEnvironment) -> None:
    code = environment.substitute(block.code)
    if block.language in PYTHON:
        command = _python_command(block, code, environment.workdir)
    else:
        command = ["bash", "-e", "-o", "pipefail", "-c", code]
    if block.directive == "runs-until-stopped":
        _run_until_stopped(block, command, environment)
        return
    try:
        finished = subprocess.run(
            command, cwd=environment.workdir, env=environment.env, capture_output=True, text=True,
            timeout=BLOCK_TIMEOUT,
        )  # fmt: skip
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"{block.where} did not finish within {BLOCK_TIMEOUT:.0f} s:\n{code}\n{error.stderr or ''}")
    assert finished.returncode == 0, (
        f"{block.where} failed (exit {finished.returncode}):\n{code}\n--- stdout\n{finished.stdout}"
        f"\n--- stderr\n{finished.stderr}"
    )


def _python_command(block: DocBlock, code: str, workdir: Path) -> list[str]:
    first_line = code.splitlines()[0] if code.strip() else ""
    test_module = _TEST_MODULE.match(first_line)
    if test_module is not None:
        (workdir / test_module[1]).write_text(code, encoding="utf-8")
        return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test_module[1]]
    unused = unused_functions(code)
    assert not unused, f"{block.where} defines {', '.join(f'{name}()' for name in unused)} but never calls it"
    script = workdir / f"snippet_{block.path.stem}_{block.line}.py"
    script.write_text(code, encoding="utf-8")
    return [sys.executable, "-c", _RUNNER, str(script)]


def unused_functions(code: str) -> list[str]:
    """Names of the module-level functions ``code`` defines and never refers to (an uncalled ``main()``)."""
    tree = ast.parse(code)
    defined = [node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)]
    used = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}
    return [name for name in defined if name not in used]


def _run_until_stopped(block: DocBlock, command: list[str], environment: DocEnvironment) -> None:
    # SIGINT below is a reader's Ctrl-C: not ignored by inheritance (a run started from a background shell).
    process = subprocess.Popen(
        prepared(command), cwd=environment.workdir, env=environment.env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        process.wait(UNTIL_STOPPED_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGINT)  # what a reader's Ctrl-C does
        process.communicate(timeout=BLOCK_TIMEOUT)
        return
    _, stderr = process.communicate()
    assert process.returncode == 0, f"{block.where} exited with {process.returncode} while it should run:\n{stderr}"


def test_unused_functions_finds_an_uncalled_main() -> None:
    """The check behind "an async example that defines main() must call it"."""
    assert unused_functions("async def main():\n    pass\n") == ["main"]
    assert unused_functions("import asyncio\nasync def main():\n    pass\nasyncio.run(main())\n") == []


def test_no_doc_tells_users_to_install_tidings_from_pypi() -> None:
    """tidings is not on PyPI: ``pip install tidings`` would fail (or install a stranger's package)."""
    commands = [
        f"{block.where}: {line.strip()}"
        for block in BLOCKS
        if block.language in SHELL
        for line in block.code.splitlines()
        if re.match(r"\s*pip install (-U |--upgrade )?tidings\b", line)
    ]
    sdk_guide_opening = (ROOT / "docs" / "sdk.md").read_text(encoding="utf-8").split("\n\n")[1]

    assert commands == []
    assert not sdk_guide_opening.startswith("`pip install tidings`")


def test_readme_says_how_to_get_tidings_on_path_after_make_run() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")

    assert "source .venv/bin/activate" in readme
    assert "pip install ." in readme


def test_license_is_the_apache_2_0_text_that_pyproject_names() -> None:
    license_text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]

    assert license_text.split()[:4] == ["Apache", "License", "Version", "2.0,"]
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in license_text
    assert "END OF TERMS AND CONDITIONS" in license_text
    assert project["license"] == "Apache-2.0"
    assert project["license-files"] == ["LICENSE"]
