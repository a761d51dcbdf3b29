"""Parameter types shared by the commands, and click options made from declared settings."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from tidings.server.config import OPTIONS
from tidings.server.options import Option, plain

F = TypeVar("F", bound=Callable[..., Any])

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


def worker_count(value: str | int) -> int:
    """``--workers``: a positive number, or ``auto`` for the cores this process may run on."""
    if value == "auto":
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        count = int(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a number or 'auto'") from None
    if count < 1:
        raise click.BadParameter("must be at least 1")
    return count


class WorkerCount(click.ParamType):  # type: ignore[type-arg]
    """A number of server processes, or ``auto``: one per core."""

    name = "workers"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> int:
        try:
            return worker_count(value if isinstance(value, int) else str(value))
        except click.BadParameter as error:
            self.fail(error.message, param, ctx)


_TYPES: dict[str, click.ParamType] = {  # type: ignore[type-arg]
    "text": click.STRING,
    "names": click.STRING,
    "bytes": BYTE_SIZE,
    "directory": click.Path(file_okay=False, path_type=Path),
    "file": click.Path(dir_okay=False, exists=True, path_type=Path),
    "workers": WorkerCount(),
}
_METAVARS = {"seconds": "SECONDS"}


def _param_type(option: Option) -> click.ParamType:  # type: ignore[type-arg]
    """The click type of ``option``: its choices, its range (the flag's floor where it has one), or its kind."""
    if option.choices:
        return click.Choice(option.choices)
    low = option.flag_minimum if option.flag_minimum is not None else option.minimum
    if option.kind == "integer":
        return click.IntRange(
            None if low is None else int(low), None if option.maximum is None else int(option.maximum)
        )
    if option.kind in ("number", "seconds"):
        if low is None and option.above is not None:
            return click.FloatRange(option.above, option.maximum, min_open=True)
        return click.FloatRange(low, option.maximum)
    return _TYPES[option.kind]


def _default(option: Option) -> tuple[Any, str | bool]:
    """The click default of ``option`` and what ``--help`` says of it: a value as the docs write it (``1MiB``,
    ``10`` seconds; the option's type converts it), or the words that say what a missing value means."""
    if option.shown_default is not None:  # no value the flag would take: the setting's own default applies
        missing = option.default if option.kind in ("flag", "names") else None
        return option.default_factory or missing, plain(option.shown_default)
    if option.kind in ("flag", "names") or option.default is None:
        return option.default, False
    return option.default_text(), True


def option_from(option: Option) -> Callable[[F], F]:
    """The click option of a declared setting: its flag, variable (shown in ``--help``), type, default and help.
    The command receives its value under the setting's name."""
    default, show_default = _default(option)
    if option.kind != "flag":
        kind: dict[str, Any] = {"type": _param_type(option), "multiple": option.kind == "names"}
    else:  # a switch (--x), or a pair of them (--x/--no-x) that leaves None when neither is given
        kind = {"is_flag": True} if option.off_flag is None else {}
    return click.option(
        f"{option.flag}/{option.off_flag}" if option.off_flag else option.flag,
        option.name,
        default=default,
        metavar=option.metavar or _METAVARS.get(option.kind),
        envvar=option.variable,
        show_envvar=True,
        show_default=show_default,
        help=option.plain_help,
        hidden=option.hidden,
        **kind,
    )


data_dir_option = option_from(next(option for option in OPTIONS if option.name == "data_dir"))
"""``--data-dir``, as ``tidings server`` declares it, for the commands that work on a server's data directory."""
