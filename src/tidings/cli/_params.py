"""Parameter types shared by the commands."""

from __future__ import annotations

import re
from pathlib import Path

import click

from tidings.server.config import default_data_dir

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "kib": 1024,
    "m": 1000**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1000**3,
    "gb": 1000**3,
    "gib": 1024**3,
}
_SIZE = re.compile(r"^\s*(\d+)\s*([a-z]*)\s*$", re.IGNORECASE)


class ByteSize(click.ParamType):  # type: ignore[type-arg]
    """A byte count: ``4096``, ``4KiB``, ``1MiB``, ``64kb``, ``2GiB``."""

    name = "size"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        match = _SIZE.match(str(value))
        unit = match.group(2).lower() if match else ""
        if match is None or unit not in _UNITS:
            self.fail(f"{value!r} is not a size (examples: 4096, 4KiB, 1MiB, 2GiB)", param, ctx)
        return int(match.group(1)) * _UNITS[unit]


BYTE_SIZE = ByteSize()


class DataDirectoryUnusable(click.ClickException):
    """A one-line error about the data directory; exits with status 2, as a usage error does."""

    exit_code = 2


data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=default_data_dir,
    show_default="$XDG_DATA_HOME/tidings or ~/.local/share/tidings",
    envvar="TIDINGS_DATA_DIR",
    help="The server's data directory (caches, keys, signing secret).",
)
