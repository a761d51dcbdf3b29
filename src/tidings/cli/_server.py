"""``tidings server``: run the server.

Its flags are generated from the declared settings (`tidings.server.options`), plus the logging flags below:
each is written once, and the README's configuration table is generated from the same declarations
(`tidings.cli._config_table`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import click

from tidings.cli._params import DataDirectoryUnusable, option_from
from tidings.server.config import OPTIONS, Settings
from tidings.server.options import InvalidSetting, Option
from tidings.server.process import LOG_FORMATS, LogFormat, configure_logging

LOG_OPTIONS = (
    Option(
        "--log-level",
        "`debug`, `info`, `warning` or `error`; at `debug`, each refused call is logged with the client's address "
        "and the reason (never its token).",
        choices=("debug", "info", "warning", "error"),
        name="log_level",
        default="info",
    ),
    Option(
        "--log-format",
        "`text` (one readable line per record) or `json` (one object per line: `time` in UTC, `level`, `logger`, "
        "`message`, and `exception` when there is one).",
        choices=LOG_FORMATS,
        name="log_format",
        default="text",
    ),
    Option(
        "--log-third-party",
        "Also log other libraries' records below `WARNING` (hpack, h2, grpc, redis...), dropped otherwise "
        "because they may contain credentials (`authorization` headers); the server warns at start "
        "that the log may then hold secrets. For debugging a library only.",
        "flag",
        name="log_third_party",
        default=False,
    ),
)
"""The flags of the server process's log, which are not settings of the server."""

SERVER_OPTIONS = (*OPTIONS, *LOG_OPTIONS)
"""Every flag of ``tidings server``, in ``--help`` order."""


def _with_server_options(command: Callable[..., None]) -> Callable[..., None]:
    for option in reversed(SERVER_OPTIONS):
        command = option_from(option)(command)
    return command


@click.command()
@_with_server_options
def server(**values: Any) -> None:
    """Run the tidings server (gRPC, Momento-compatible, and HTTP) until SIGINT or SIGTERM."""
    from tidings.server.app import run
    from tidings.server.store import DataDirectoryError

    level, log_format, third_party = (values.pop(option.name) for option in LOG_OPTIONS)
    try:
        settings = Settings.from_options(values)
    except InvalidSetting as error:
        raise click.UsageError(error.message) from None
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    configure_logging(level, cast(LogFormat, log_format), third_party=third_party)
    try:
        run(settings)
    except DataDirectoryError as error:
        raise DataDirectoryUnusable(str(error)) from None
    except (OSError, ValueError) as error:
        raise click.ClickException(str(error)) from None
