"""What the code's comments and docstrings cite exists: every ``.md`` file named under ``src/`` is in the repository.

(Docstrings once cited design notes kept outside the repository, which a reader of the code cannot open; they
cite the README and ``docs/`` instead.)
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# A relative path ending in .md that is not part of a longer name or of a URL (`docs/http.md`, `README.md`).
_MARKDOWN_NAME = re.compile(r"(?<![\w./:-])([\w./-]*\w\.md)\b")


def _source_files(source: Path) -> list[Path]:
    """The text files of the source tree (not the build's ``*.egg-info``, not ``__pycache__``)."""
    return sorted(
        path
        for path in source.rglob("*")
        if path.is_file()
        and not any(part.endswith(".egg-info") or part == "__pycache__" for part in path.relative_to(source).parts)
    )


def _missing_markdown_references(source: Path, root: Path) -> list[str]:
    """``file:line: name`` for each ``.md`` file named under ``source`` that is not at ``root / name``."""
    missing = []
    for path in _source_files(source):
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            for name in _MARKDOWN_NAME.findall(line):
                if not (root / name).is_file():
                    missing.append(f"{path.relative_to(source.parent)}:{number}: {name}")
    return missing


def test_source_names_only_markdown_files_in_the_repository() -> None:
    missing = _missing_markdown_references(ROOT / "src", ROOT)

    assert missing == []


def test_source_references_check_finds_a_missing_file(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "module.py").write_text('"""See README.md, docs/http.md and NOTES.md (https://example.com/X.md)."""\n')
    (tmp_path / "README.md").write_text("# readme\n")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "http.md").write_text("# http\n")

    missing = _missing_markdown_references(source, tmp_path)

    assert missing == ["src/module.py:1: NOTES.md"]
