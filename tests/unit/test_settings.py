"""Settings: the shapes an embedding caller may pass."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tidings.server.config import Settings


def test_settings_accept_str_paths() -> None:
    settings = Settings(data_dir="some/dir", tls_cert="cert.pem", tls_key="key.pem")  # type: ignore[arg-type]

    assert settings.data_dir == Path("some/dir")
    assert settings.tls_cert == Path("cert.pem")
    assert settings.tls_key == Path("key.pem")


def test_settings_keep_path_paths() -> None:
    assert Settings(data_dir=Path("a")).data_dir == Path("a")


@pytest.mark.parametrize("drain_timeout", [-1.0, math.inf, math.nan], ids=["negative", "infinite", "nan"])
def test_settings_refuse_a_drain_timeout_that_is_not_finite_and_positive(drain_timeout: float) -> None:
    with pytest.raises(ValueError, match="drain_timeout"):
        Settings(drain_timeout=drain_timeout)


def test_settings_choose_grpcio_unless_told_h2() -> None:
    assert Settings().grpc_transport == "h2"
    assert Settings(grpc_transport="grpcio").grpc_transport == "grpcio"


def test_settings_refuse_an_unknown_grpc_transport() -> None:
    with pytest.raises(ValueError, match="--grpc-transport must be grpcio or h2"):
        Settings(grpc_transport="quic")
