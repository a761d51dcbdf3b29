"""CLI parameter types."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from tidings.cli._params import BYTE_SIZE

SIZES = {
    "plain": ("4096", 4096),
    "zero": ("0", 0),
    "bytes-unit": ("10b", 10),
    "kib": ("4KiB", 4096),
    "mib": ("1MiB", 1024**2),
    "gib": ("2GiB", 2 * 1024**3),
    "kb-is-decimal": ("64kb", 64_000),
    "k-is-decimal": ("4k", 4_000),
    "mb": ("2MB", 2_000_000),
    "m": ("3m", 3_000_000),
    "upper-case": ("4KIB", 4096),
    "spaces": (" 2 MiB ", 2 * 1024**2),
    "int-passthrough": (4096, 4096),
}

BAD_SIZES = {
    "empty": "",
    "word": "abc",
    "negative": "-1",
    "fraction": "1.5MiB",
    "unknown-unit": "4TiB",
    "unit-only": "KiB",
    "trailing-junk": "4 KiB extra",
    "hex": "0x10",
}


@pytest.mark.parametrize(("text", "expected"), SIZES.values(), ids=SIZES.keys())
def test_byte_size_converts_counts_and_units(text: str | int, expected: int) -> None:
    # Act
    size = BYTE_SIZE.convert(text, None, None)

    # Assert
    assert size == expected


@pytest.mark.parametrize("text", BAD_SIZES.values(), ids=BAD_SIZES.keys())
def test_byte_size_rejects_bad_input(text: str) -> None:
    with pytest.raises(click.BadParameter, match="is not a size"):
        BYTE_SIZE.convert(text, None, None)


def test_byte_size_reports_bad_input_as_a_usage_error() -> None:
    # Arrange
    @click.command()
    @click.option("--size", type=BYTE_SIZE)
    def command(size: int) -> None:
        click.echo(size)

    # Act
    good = CliRunner().invoke(command, ["--size", "4KiB"])
    bad = CliRunner().invoke(command, ["--size", "lots"])

    # Assert
    assert (good.exit_code, good.output) == (0, "4096\n")
    assert bad.exit_code == 2
    assert "'lots' is not a size" in bad.output
