"""The README's configuration table is generated from the settings' declarations, and stays so."""

from __future__ import annotations

from pathlib import Path

from tidings.cli._config_table import config_table, table_in, with_config_table
from tidings.cli._server import SERVER_OPTIONS

README = Path(__file__).resolve().parents[2] / "README.md"


def test_config_table_in_the_readme_is_the_generated_one() -> None:
    written = table_in(README.read_text(encoding="utf-8"))

    assert written == config_table(), "run: python -m tidings.cli._config_table README.md"


def test_config_table_has_a_row_per_visible_flag_and_none_for_test_hooks() -> None:
    table = config_table()

    for option in SERVER_OPTIONS:
        assert (f"| `{option.flag}" in table) is not option.hidden, option.flag
        assert (f"`{option.variable}`" in table) is not option.hidden, option.variable
    assert "TIDINGS_TEST_FOLLOW_DELAY" not in table


def test_config_table_shows_sizes_and_durations_as_people_write_them() -> None:
    rows = {line.split(" | ")[0]: line for line in config_table().splitlines()}

    assert "| `4KiB` |" in rows["| `--max-message-size`"]
    assert "| `256MiB` |" in rows["| `--max-retained-bytes`"]
    assert "| `600` |" in rows["| `--topic-idle-ttl`"]
    assert "| `--workers N\\|auto`" in rows


def test_config_table_replaces_only_the_text_between_its_markers() -> None:
    document = README.read_text(encoding="utf-8")
    stale = with_config_table(document, "| stale |\n")

    assert stale != document
    assert with_config_table(stale) == document
