"""Settings: the shapes an embedding caller may pass."""

from __future__ import annotations

from pathlib import Path

from tidings.server.config import Settings


def test_settings_accept_str_paths() -> None:
    settings = Settings(data_dir="some/dir", tls_cert="cert.pem", tls_key="key.pem")  # type: ignore[arg-type]

    assert settings.data_dir == Path("some/dir")
    assert settings.tls_cert == Path("cert.pem")
    assert settings.tls_key == Path("key.pem")


def test_settings_keep_path_paths() -> None:
    assert Settings(data_dir=Path("a")).data_dir == Path("a")
