"""Writing benchmark figures into docs/performance.md: each benchmark owns one marked section."""

from __future__ import annotations

from pathlib import Path


def markers(name: str) -> tuple[str, str]:
    """The start and end markers of section ``name`` (``core``, ``sdk``, ``http``, ``auth``)."""
    return f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"


def write_section(path: Path, name: str, body: str) -> None:
    """Replace section ``name`` of ``path`` with ``body`` (appending it, or creating the file, if absent).

    ``body`` is the text between the markers; other sections are left as they are.
    """
    start_marker, end_marker = markers(name)
    block = f"{start_marker}\n{body.strip()}\n{end_marker}\n"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("# Performance\n\n" + block)
        return
    current = path.read_text()
    start, end = current.find(start_marker), current.find(end_marker)
    if start == -1 or end == -1 or end < start:
        path.write_text(current.rstrip("\n") + "\n\n" + block)
        return
    after = current[end + len(end_marker) :].lstrip("\n")
    path.write_text(current[:start] + block + ("\n" + after if after else ""))
