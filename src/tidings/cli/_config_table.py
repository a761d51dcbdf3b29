"""The README's configuration table, generated from the declared settings (``tidings server``'s flags).

``python -m tidings.cli._config_table`` prints the table; ``python -m tidings.cli._config_table README.md``
rewrites the table between its markers in that file. A unit test fails when the
README's table and the declarations disagree.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

from tidings.cli._server import SERVER_OPTIONS
from tidings.server.options import Option

BEGIN = "<!-- configuration table: generated from the settings' declarations by python -m tidings.cli._config_table -->"
END = "<!-- end of the configuration table -->"


def config_table(options: Iterable[Option] = SERVER_OPTIONS) -> str:
    """The Markdown table of every flag that is not hidden: flag, variable, default, meaning."""
    lines = ["| flag | variable | default | meaning |", "| --- | --- | --- | --- |"]
    for option in options:
        if not option.hidden:
            lines.append("| " + " | ".join(_cell(text) for text in _row(option)) + " |")
    return "\n".join(lines) + "\n"


def _row(option: Option) -> tuple[str, str, str, str]:
    flag = f"`{option.flag}{' ' + option.metavar if option.metavar else ''}`"
    if option.off_flag:
        flag += f" / `{option.off_flag}`"
    variable = f"`{option.variable}`" + (" (space-separated)" if option.kind == "names" else "")
    default = option.default_text()
    if option.shown_default is None and default not in ("none", "off"):
        default = f"`{default}`"
    return flag, variable, default, option.help


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def with_config_table(document: str, table: str | None = None) -> str:
    """``document`` with the text between its table markers replaced by the generated table."""
    start, end = document.index(BEGIN) + len(BEGIN), document.index(END)
    return document[:start] + "\n" + (config_table() if table is None else table) + document[end:]


def table_in(document: str) -> str:
    """The table between ``document``'s markers, as written."""
    return document[document.index(BEGIN) + len(BEGIN) : document.index(END)].lstrip("\n")


def main(arguments: list[str]) -> None:
    """Print the table, or rewrite it in the files named."""
    if not arguments:
        sys.stdout.write(config_table())
    for name in arguments:
        path = Path(name)
        path.write_text(with_config_table(path.read_text(encoding="utf-8")), encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1:])
