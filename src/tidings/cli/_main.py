"""The ``tidings`` command group."""

from __future__ import annotations

import click

from tidings.cli._cache import cache
from tidings.cli._client import GroupConnection, endpoint_option
from tidings.cli._keys import key
from tidings.cli._publish import publish
from tidings.cli._server import server
from tidings.cli._subscribe import subscribe
from tidings.cli._token import token
from tidings.cli._webhook import webhook


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tidings")
@endpoint_option
@click.pass_context
def main(ctx: click.Context, endpoint: str | None, api_key: str | None) -> None:
    """tidings: a self-hosted, Momento-compatible Topics service.

    --endpoint and --api-key here apply to the client commands (publish, subscribe, cache, token, webhook).
    """
    ctx.obj = GroupConnection(endpoint, api_key)


main.add_command(server)
main.add_command(publish)
main.add_command(subscribe)
main.add_command(cache)
main.add_command(key)
main.add_command(token)
main.add_command(webhook)
