"""What the client commands share: connection options, one-line errors, and a clean Ctrl-C.

``--endpoint`` and ``--api-key`` may be given to the ``tidings`` group or to each command (the command's
win); unset, they come from ``TIDINGS_ENDPOINT`` / ``TIDINGS_API_KEY``, else ``localhost:8080`` anonymous. An
endpoint that is not ``HOST:PORT`` is a usage error, wherever it came from.
"""

from __future__ import annotations

import functools
import os
import socket
import sys
from collections.abc import Callable
from typing import Any, NoReturn, ParamSpec, TypeVar

import click
import grpc.aio

from tidings import DEFAULT_TIMEOUT, ErrorCode, ErrorResponse
from tidings.cli._endpoint import (
    GroupConnection,
    endpoint_from_environment,
    endpoint_option,
    parse_endpoint,
    through_grpc_proxy,
)

Params = ParamSpec("Params")
Result = TypeVar("Result")

EXIT_INTERRUPTED = 130


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
    if not endpoint and not group.endpoint and os.environ.get("TIDINGS_ENDPOINT"):
        endpoint = endpoint_from_environment(os.environ["TIDINGS_ENDPOINT"], "TIDINGS_ENDPOINT")
    return {
        "endpoint": endpoint or group.endpoint or "localhost:8080",
        "api_key": api_key or group.api_key or os.environ.get("TIDINGS_API_KEY") or None,
        "timeout": timeout,
    }


def refuse_unreachable(endpoint: str, timeout: float, doing: str) -> None:
    """Fail at once when nothing accepts connections at ``endpoint`` (a stopped server), as a publish does.

    A subscribe alone would not: the SDK asks a server that refuses its first stream again, within the
    client's timeout, because a restarting server refuses for a moment (docs/sdk.md). A command run by hand
    is better told now; a server that accepts but is busy still gets the SDK's retries.

    Not checked when grpc reaches ``endpoint`` through a proxy (``grpc_proxy``, ``https_proxy``, ``http_proxy``
    not excluded by ``no_grpc_proxy`` / ``no_proxy``): the server may then be out of this machine's direct reach.
    """
    where = parse_endpoint(endpoint)
    if through_grpc_proxy(where.host, os.environ):
        return
    try:
        socket.create_connection(where.address, timeout=timeout).close()
    except OSError as error:
        reason = error.strerror or str(error) or type(error).__name__
        raise click.ClickException(
            f"{doing}: UNAVAILABLE: cannot connect to {where.host}:{where.port}: {reason} (is the server running?)"
        ) from None


def fail(error: ErrorResponse, doing: str) -> NoReturn:
    """Report ``error`` in one line on stderr and exit with status 1."""
    message = " ".join(error.message.split())
    code = error.error_code.name
    if error.error_code is ErrorCode.UNKNOWN and isinstance(error.inner_exception, grpc.aio.AioRpcError):
        # A status the SDK has no ErrorCode for (UNIMPLEMENTED from tidings' HTTP port): name it.
        code = error.inner_exception.code().name
    raise click.ClickException(f"{doing}: {code}: {message}")


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
