"""Every code block in README.md and docs/*.md runs, as written, against a real server.

For doc authors — what happens to a fenced block:

- ```python (or py) runs as a reader runs it: saved to a file and run with ``python file.py``, nothing added.
  So there is no top-level ``await`` / ``async with`` / ``async for`` (a ``SyntaxError``, as for the reader):
  put them in an ``async def main()`` and end with ``asyncio.run(main())``. A block that defines a function
  must use it: an ``async def main()`` that is never called is a failure, not a pass. A line's
  ``# prints TEXT`` comment is a promise: TEXT must be a line of what the block prints (``...`` matches
  anything; several such comments, in order). A block whose first line is ``# test_<name>.py`` is a pytest
  module: it is saved under that name and run with ``python -m pytest`` (the ``tidings_server`` fixture is
  there).
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
from tests.integration._docs import (
    NOT_CODE,
    PYTHON,
    ROOT,
    SHELL,
    DocBlock,
    doc_files,
    example_files,
    extract_blocks,
    printed_line_pattern,
)
from tests.integration._server import ServerProcess

BLOCKS = [block for path in doc_files() for block in extract_blocks(path)]
DIRECTIVES = frozenset({"skip", "runs-until-stopped"})
BLOCK_TIMEOUT = 60.0
UNTIL_STOPPED_SECONDS = 3.0
_TEST_MODULE = re.compile(r"^#\s*(test_\w+\.py)\s*$")


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
    if block.directive == "runs-until-stopped":
        _run_until_stopped(block, _command(block, code, environment.workdir), environment)
        return
    run_to_completion(block, code, environment.workdir, environment.env)


def run_to_completion(block: DocBlock, code: str, workdir: Path, env: dict[str, str]) -> None:
    """Run ``code`` (``block`` after substitutions) in ``workdir`` as a reader would; it must succeed and
    print what its ``# prints`` comments promise."""
    command = _command(block, code, workdir)
    try:
        finished = subprocess.run(
            command, cwd=workdir, env=env, capture_output=True, text=True, timeout=BLOCK_TIMEOUT,
        )  # fmt: skip
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"{block.where} did not finish within {BLOCK_TIMEOUT:.0f} s:\n{code}\n{error.stderr or ''!s}")
    assert finished.returncode == 0, (
        f"{block.where} failed (exit {finished.returncode}):\n{code}\n--- stdout\n{finished.stdout}"
        f"\n--- stderr\n{finished.stderr}"
    )
    missing = unprinted(block.printed, finished.stdout)
    assert not missing, (
        f"{block.where} promises `# prints {missing[0]}`, which is not a line of what it printed (in order):\n"
        f"{code}\n--- stdout\n{finished.stdout}"
    )


def unprinted(promised: list[str], stdout: str) -> list[str]:
    """The promised lines (from the first one not found on) that ``stdout`` does not print, in order."""
    lines = iter(line.strip() for line in stdout.splitlines())
    for index, text in enumerate(promised):
        pattern = printed_line_pattern(text)
        if not any(pattern.fullmatch(line) for line in lines):
            return promised[index:]
    return []


def _command(block: DocBlock, code: str, workdir: Path) -> list[str]:
    if block.language not in PYTHON:
        return ["bash", "-e", "-o", "pipefail", "-c", code]
    first_line = code.splitlines()[0] if code.strip() else ""
    test_module = _TEST_MODULE.match(first_line)
    if test_module is not None:
        (workdir / test_module[1]).write_text(code, encoding="utf-8")
        return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test_module[1]]
    unused = unused_functions(code)
    assert not unused, f"{block.where} defines {', '.join(f'{name}()' for name in unused)} but never calls it"
    script = workdir / f"snippet_{block.path.stem}_{block.line}.py"
    script.write_text(code, encoding="utf-8")
    return [sys.executable, script.name]  # `python file.py`: no top-level await, nothing wrapped around it


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


def _sample_blocks(tmp_path: Path, *codes: str) -> list[DocBlock]:
    """The python blocks of a small Markdown page holding ``codes``, as the docs test reads them."""
    page = tmp_path / "sample.md"
    page.write_text("".join(f"Some prose.\n\n```python\n{code}```\n\n" for code in codes), encoding="utf-8")
    return extract_blocks(page)


def _run_sample(block: DocBlock, tmp_path: Path) -> None:
    run_to_completion(block, block.code, tmp_path, {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})


@pytest.mark.parametrize(
    "statement",
    ["await asyncio.sleep(0)\n", "async with asyncio.timeout(1):\n    pass\n", "async for _ in aiter([]):\n    pass\n"],
    ids=["await", "async-with", "async-for"],
)
def test_a_python_block_with_top_level_await_fails_as_it_would_for_a_reader(tmp_path: Path, statement: str) -> None:
    """Saved to a file and run with ``python``, top-level ``await`` is a SyntaxError: so is it in the docs test."""
    [block] = _sample_blocks(tmp_path, f"import asyncio\n\n{statement}")

    with pytest.raises(AssertionError, match="SyntaxError"):
        _run_sample(block, tmp_path)


def test_a_python_block_with_asyncio_run_main_runs(tmp_path: Path) -> None:
    [block] = _sample_blocks(
        tmp_path,
        "import asyncio\n\n\nasync def main():\n    async with asyncio.timeout(5):\n"
        "        await asyncio.sleep(0)\n    print('done')  # prints done\n\n\nasyncio.run(main())\n",
    )

    _run_sample(block, tmp_path)


def test_a_python_block_must_print_what_its_prints_comments_promise(tmp_path: Path) -> None:
    kept, broken, out_of_order = _sample_blocks(
        tmp_path,
        "print(1, 'hello')  # prints 1 hello\nprint('127.0.0.1:40123')  # prints 127.0.0.1:...\n",
        "print(6, 'hello')  # prints 1 hello\n",
        "print('b')  # prints a\nprint('a')  # prints b\n",
    )

    _run_sample(kept, tmp_path)
    with pytest.raises(AssertionError, match="promises `# prints 1 hello`"):
        _run_sample(broken, tmp_path)
    with pytest.raises(AssertionError, match="promises `# prints b`"):
        _run_sample(out_of_order, tmp_path)


def test_unused_functions_finds_an_uncalled_main() -> None:
    """The check behind "an async example that defines main() must call it"."""
    assert unused_functions("async def main():\n    pass\n") == ["main"]
    assert unused_functions("import asyncio\nasync def main():\n    pass\nasyncio.run(main())\n") == []


def test_no_doc_tells_users_to_install_tidings_from_pypi() -> None:
    """tidings is not on PyPI: ``pip install tidings`` would fail (or install a stranger's package); the
    examples' READMEs included."""
    commands = [
        f"{block.where}: {line.strip()}"
        for block in [*BLOCKS, *(block for path in example_files() for block in extract_blocks(path))]
        if block.language in SHELL
        for line in block.code.splitlines()
        if re.match(r"\s*pip install (-U |--upgrade )?tidings\b", line)
    ]
    sdk_guide_opening = (ROOT / "docs" / "sdk.md").read_text(encoding="utf-8").split("\n\n")[1]

    assert commands == []
    assert not sdk_guide_opening.startswith("`pip install tidings`")


def test_docs_name_only_markdown_files_that_are_in_the_project() -> None:
    """A reader follows "see X.md": X must be there, next to the page or at the top of the checkout (the
    project's design notes are not part of it)."""
    missing = [
        f"{page.relative_to(ROOT)}: {name}"
        for page in [*doc_files(), *example_files()]
        for name in re.findall(r"[\w./-]+\.md\b", page.read_text(encoding="utf-8"))
        if not (page.parent / name).is_file() and not (ROOT / name).is_file()
    ]

    assert missing == []


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
