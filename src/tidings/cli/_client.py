"""What the client commands share: connection options, one-line errors, and a clean Ctrl-C.

``--endpoint`` and ``--api-key`` may be given to the ``tidings`` group or to each command (the command's
win); unset, they come from ``TIDINGS_ENDPOINT`` / ``TIDINGS_API_KEY``, else ``localhost:8080`` anonymous.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn, ParamSpec, TypeVar

import click

from tidings import DEFAULT_TIMEOUT, ErrorResponse

Params = ParamSpec("Params")
Result = TypeVar("Result")

EXIT_INTERRUPTED = 130


@dataclass(frozen=True, slots=True)
class GroupConnection:
    """``--endpoint`` / ``--api-key`` as given to the ``tidings`` group."""

    endpoint: str | None = None
    api_key: str | None = None


def endpoint_option(function: Callable[Params, Result]) -> Callable[Params, Result]:
    """Add ``--endpoint`` and ``--api-key``."""
    function = click.option(
        "--api-key",
        metavar="KEY",
        default=None,
        help="API key or token (default: $TIDINGS_API_KEY, else anonymous).",
    )(function)
    return click.option(
        "--endpoint",
        metavar="HOST:PORT",
        default=None,
        help="Server to connect to; grpcs:// for TLS (default: $TIDINGS_ENDPOINT, else localhost:8080).",
    )(function)


def connection_options(function: Callable[Params, Result]) -> Callable[Params, Result]:
    """Add ``--endpoint``, ``--api-key`` and ``--timeout`` to a client command."""
    function = click.option(
        "--timeout",
        type=click.FloatRange(0, min_open=True),
        default=DEFAULT_TIMEOUT,
        show_default=True,
        help="Seconds to wait for each answer.",
    )(function)
    return endpoint_option(function)


def client_arguments(endpoint: str | None, api_key: str | None, timeout: float) -> dict[str, Any]:
    """Keyword arguments of the SDK clients: the command's options, then the group's, then the environment."""
    group = click.get_current_context().find_object(GroupConnection) or GroupConnection()
    return {
        "endpoint": endpoint or group.endpoint or os.environ.get("TIDINGS_ENDPOINT") or "localhost:8080",
        "api_key": api_key or group.api_key or os.environ.get("TIDINGS_API_KEY") or None,
        "timeout": timeout,
    }


def fail(error: ErrorResponse, doing: str) -> NoReturn:
    """Report ``error`` in one line on stderr and exit with status 1."""
    message = " ".join(error.message.split())
    raise click.ClickException(f"{doing}: {error.error_code.name}: {message}")


def client_command(function: Callable[Params, None]) -> Callable[Params, None]:
    """Ctrl-C exits with status 130 and no traceback; a closed stdout pipe ends the command quietly;
    a bad endpoint or argument is a one-line error."""

    @functools.wraps(function)
    def run(*args: Params.args, **kwargs: Params.kwargs) -> None:
        try:
            function(*args, **kwargs)
        except KeyboardInterrupt:
            sys.exit(EXIT_INTERRUPTED)
        except BrokenPipeError:
            # The reader went away (``tidings subscribe | head``): stop writing, exit without complaint.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except ValueError as error:
            raise click.ClickException(str(error)) from None

    return run
