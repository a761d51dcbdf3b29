"""configure_logging: other libraries' records below WARNING are dropped whatever the level, unless the operator
opts in, and then with a warning (issue 16 item 4)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from tidings.server.process import THIRD_PARTY_LOGGERS, configure_logging, logging_configuration

# The authorization header as hpack logs it when decoding a request's headers.
HPACK_DUMP = "Decoded (b'authorization', b'Bearer tk_secret'), consumed 41"


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """configure_logging changes the root logger and library loggers: put them back after each test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in (*THIRD_PARTY_LOGGERS, "somelib")}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, library_level in levels.items():
        logging.getLogger(name).setLevel(library_level)


def _emit_library_and_own_records() -> None:
    logging.getLogger("hpack.hpack").debug("%s", HPACK_DUMP)
    logging.getLogger("httpx").info("HTTP Request: POST http://127.0.0.1:9/hook?secret=s3cret 204")
    logging.getLogger("somelib.sub").info("an unknown library's info")
    logging.getLogger("somelib.sub").warning("an unknown library's warning")
    logging.getLogger("tidings.server.grpc").debug("own debug line")


@pytest.mark.parametrize("level", ["debug", "info"])
def test_configure_logging_drops_other_libraries_records_below_warning(
    capsys: pytest.CaptureFixture[str], level: str
) -> None:
    # Arrange
    configure_logging(level)

    # Act
    _emit_library_and_own_records()

    # Assert
    log = capsys.readouterr().err
    assert "tk_secret" not in log
    assert "s3cret" not in log
    assert "an unknown library's info" not in log
    assert "WARNING somelib.sub: an unknown library's warning" in log
    assert ("own debug line" in log) == (level == "debug")
    assert all(logging.getLogger(name).level == logging.WARNING for name in THIRD_PARTY_LOGGERS)


def test_configure_logging_with_third_party_logs_them_after_a_warning(capsys: pytest.CaptureFixture[str]) -> None:
    # Arrange
    configure_logging("debug", third_party=True)

    # Act
    _emit_library_and_own_records()

    # Assert
    lines = capsys.readouterr().err.splitlines()
    assert "WARNING tidings.server: --log-third-party" in lines[0]
    assert "may contain credentials" in lines[0]
    assert any(HPACK_DUMP in line for line in lines)
    assert any("an unknown library's info" in line for line in lines)


def test_configure_logging_warns_about_third_party_once_not_in_each_worker(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Act
    configure_logging("info", third_party=True, worker=3)

    # Assert
    assert "--log-third-party" not in capsys.readouterr().err


@pytest.mark.parametrize("third_party", [False, True])
def test_logging_configuration_is_what_configure_logging_set(third_party: bool) -> None:
    # Arrange
    configure_logging("warning", "json", third_party=third_party)

    # Act
    configuration = logging_configuration()

    # Assert
    assert configuration == ("WARNING", "json", third_party)
