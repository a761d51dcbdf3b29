"""The ``tidings`` command group."""

from __future__ import annotations

import click

from tidings.cli._server import server


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tidings")
def main() -> None:
    """tidings: a self-hosted, Momento-compatible Topics service."""


main.add_command(server)
