"""Fenced code blocks of the Markdown docs, and how each is meant to be tested (see ``test_docs.py``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).parents[2]

PYTHON = frozenset({"python", "py"})
SHELL = frozenset({"sh", "bash", "shell"})
# Not code: output samples, data formats, usage synopses. Nothing to run.
NOT_CODE = frozenset({"text", "console", "json", "output"})

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_MARKER = re.compile(r"^\s*<!--\s*docs-test:\s*(?P<directive>[\w-]+)(?P<argument>.*?)-->\s*$")
# `print(x)  # prints 1 hello` in a python block: the output the reader is promised ("..." matches anything).
_PRINTS = re.compile(r"#\s*prints\s+(?P<text>.+?)\s*$")


@dataclass(frozen=True)
class DocBlock:
    """One fenced block: where it is, its language, its (dedented) text, and its docs-test marker if any."""

    path: Path
    line: int  # of the opening fence, 1-based
    language: str
    code: str
    directive: str | None = None  # "skip" or "runs-until-stopped"
    argument: str = ""  # the skip reason

    @property
    def where(self) -> str:
        shown = self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path
        return f"{shown}:{self.line}"

    @property
    def printed(self) -> list[str]:
        """What the block says it prints: the ``# prints TEXT`` comments of a python block, in order."""
        if self.language not in PYTHON:
            return []
        return [match["text"] for match in map(_PRINTS.search, self.code.splitlines()) if match is not None]


def doc_files() -> list[Path]:
    """README.md and every docs/*.md, in a stable order."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def example_files() -> list[Path]:
    """The READMEs of examples/*: read by readers too, but their blocks need several terminals, so not run."""
    return sorted((ROOT / "examples").glob("*/README.md"))


def printed_line_pattern(promised: str) -> re.Pattern[str]:
    """A whole output line as a ``# prints`` comment promises it, with ``...`` standing for anything."""
    return re.compile(".*".join(re.escape(part) for part in promised.split("...")))


def extract_blocks(path: Path) -> list[DocBlock]:
    """Every fenced block of ``path``, with the ``<!-- docs-test: ... -->`` marker on a line just before it."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[DocBlock] = []
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        language = opening["info"].strip().split(" ")[0].lower() if opening["info"].strip() else ""
        body: list[str] = []
        end = index + 1
        while end < len(lines) and not lines[end].strip().startswith(fence[0] * len(fence)):
            body.append(lines[end][len(indent) :] if lines[end].startswith(indent) else lines[end].lstrip())
            end += 1
        directive, argument = _marker_before(lines, index)
        blocks.append(DocBlock(path, index + 1, language, "\n".join(body) + "\n", directive, argument))
        index = end + 1
    return blocks


def _marker_before(lines: list[str], index: int) -> tuple[str | None, str]:
    """The docs-test marker on the nearest non-blank line above line ``index``, if that line is one."""
    previous = index - 1
    while previous >= 0 and not lines[previous].strip():
        previous -= 1
    if previous < 0:
        return None, ""
    marker = _MARKER.match(lines[previous])
    if marker is None:
        return None, ""
    return marker["directive"], marker["argument"].strip()
