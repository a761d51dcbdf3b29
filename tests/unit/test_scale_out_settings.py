"""Settings and flags of scale-out: --redis-url, --redis-cluster, --workers."""

from __future__ import annotations

import os

import click
import pytest
from click.testing import CliRunner

from tidings.cli._params import worker_count as _worker_count
from tidings.cli._server import server
from tidings.server.config import Settings


def test_workers_above_one_need_redis() -> None:
    with pytest.raises(ValueError, match="needs --redis-url or --redis-cluster"):
        Settings(workers=2)


def test_workers_with_redis_are_accepted() -> None:
    # Act
    settings = Settings(workers=3, redis_url="redis://127.0.0.1:6379/0")

    # Assert
    assert (settings.workers, settings.redis_cluster) == (3, False)


@pytest.mark.parametrize("url", ["127.0.0.1:6379", "http://redis:6379", "postgres://x"])
def test_redis_url_must_name_a_redis_scheme(url: str) -> None:
    with pytest.raises(ValueError, match="must start with redis://"):
        Settings(redis_url=url)


def test_worker_count_parses_numbers_and_auto() -> None:
    # Act
    counted = _worker_count("4")
    automatic = _worker_count("auto")

    # Assert
    assert counted == 4
    assert automatic == len(os.sched_getaffinity(0))


@pytest.mark.parametrize("value", ["0", "-1", "many"])
def test_worker_count_refuses_other_values(value: str) -> None:
    with pytest.raises(click.BadParameter):
        _worker_count(value)


def test_server_refuses_redis_url_and_cluster_together() -> None:
    # Act
    result = CliRunner().invoke(
        server, ["--redis-url", "redis://127.0.0.1:1", "--redis-cluster", "redis://127.0.0.1:2"]
    )

    # Assert
    assert result.exit_code == 2
    assert "exclude each other" in result.output
