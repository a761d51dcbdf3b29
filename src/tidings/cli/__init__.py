"""The ``tidings`` command line."""

from tidings.cli._main import main

__all__ = ["main"]
