"""The signing secret and the generated admin key (files in the data directory, mode 0600), the key CLI's
durations, and the ``tidings key`` commands against a store in a temporary directory."""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from tidings.cli._keys import key as key_command
from tidings.cli._keys import parse_duration
from tidings.server.auth import (
    AdminKey,
    Authenticator,
    AuthPolicy,
    TokenSigner,
    load_or_create_admin_key,
    load_or_create_secret,
)
from tidings.server.auth._keys import split_api_key
from tidings.server.auth._secrets import ADMIN_KEY_ENV, ADMIN_KEY_FILE, SECRET_ENV, SECRET_FILE
from tidings.server.core import TopicGrant, TopicPermission, Unauthenticated
from tidings.server.store.sqlite import SqliteStore


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- the signing secret --------------------------------------------------------------------------


def test_load_or_create_secret_creates_a_private_file(tmp_path: Path) -> None:
    # Arrange
    data_dir = tmp_path / "data"

    # Act
    secret = load_or_create_secret(data_dir, environ={})

    # Assert
    path = data_dir / SECRET_FILE
    assert _mode(path) == 0o600
    assert len(secret) >= 32
    assert path.read_text().strip().encode() == secret


def test_load_or_create_secret_reuses_the_file(tmp_path: Path) -> None:
    # Arrange
    first = load_or_create_secret(tmp_path, environ={})

    # Act
    second = load_or_create_secret(tmp_path, environ={})

    # Assert
    assert second == first


def test_load_or_create_secret_is_random(tmp_path: Path) -> None:
    # Act
    one = load_or_create_secret(tmp_path / "one", environ={})
    two = load_or_create_secret(tmp_path / "two", environ={})

    # Assert
    assert one != two


def test_load_or_create_secret_honours_the_environment(tmp_path: Path) -> None:
    # Arrange
    configured = "e" * 32

    # Act
    secret = load_or_create_secret(tmp_path, environ={SECRET_ENV: configured})

    # Assert
    assert secret == configured.encode()
    assert not (tmp_path / SECRET_FILE).exists()


def test_load_or_create_secret_refuses_a_short_environment_secret(tmp_path: Path) -> None:
    # Act / Assert
    with pytest.raises(ValueError, match=SECRET_ENV):
        load_or_create_secret(tmp_path, environ={SECRET_ENV: "e" * 31})


def test_load_or_create_secret_refuses_a_short_file(tmp_path: Path) -> None:
    # Arrange
    (tmp_path / SECRET_FILE).write_text("short\n")

    # Act / Assert
    with pytest.raises(ValueError, match="no usable secret"):
        load_or_create_secret(tmp_path, environ={})


def test_tokens_signed_with_the_stored_secret_verify_after_a_restart(tmp_path: Path) -> None:
    # Arrange
    token, _ = TokenSigner(load_or_create_secret(tmp_path, environ={})).mint(
        (TopicGrant(TopicPermission.READ_ONLY),), 60
    )

    # Act
    principal = TokenSigner(load_or_create_secret(tmp_path, environ={})).verify(token)

    # Assert
    assert principal.grants == (TopicGrant(TopicPermission.READ_ONLY),)


# --- the admin key -------------------------------------------------------------------------------


async def test_load_or_create_admin_key_creates_a_private_super_user_key_once(tmp_path: Path) -> None:
    # Arrange
    store = await SqliteStore.open(tmp_path)
    try:
        # Act
        path = (await load_or_create_admin_key(tmp_path, store, environ={})).path
        again = (await load_or_create_admin_key(tmp_path, store, environ={})).path
        keys = await store.list_api_keys()
    finally:
        await store.close()

    # Assert
    assert path == again == tmp_path / ADMIN_KEY_FILE
    assert _mode(path) == 0o600
    parts = split_api_key(path.read_text().strip())
    assert parts is not None
    key_id, secret = parts
    assert len(keys) == 1
    (record,) = keys
    assert record.key_id == key_id
    assert record.super_user
    assert record.matches(secret)
    assert secret not in record.secret_hash


async def test_admin_key_file_authenticates_as_super_user(tmp_path: Path) -> None:
    # Arrange
    store = await SqliteStore.open(tmp_path)
    try:
        path = (await load_or_create_admin_key(tmp_path, store, environ={})).path
        assert path is not None
        auth = Authenticator(TokenSigner(b"s" * 32), AuthPolicy(allow_anonymous=False))
        await auth.refresh(store)
    finally:
        await store.close()

    # Act
    principal = auth.authenticate(path.read_text().strip())

    # Assert
    assert principal.super_user


async def test_load_or_create_admin_key_refuses_a_short_environment_key(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path)
    try:
        with pytest.raises(ValueError, match="at least 32"):
            await load_or_create_admin_key(tmp_path, store, environ={ADMIN_KEY_ENV: "short"})
    finally:
        await store.close()


async def test_load_or_create_admin_key_replaces_a_revoked_one(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path)
    try:
        path = (await load_or_create_admin_key(tmp_path, store, environ={})).path
        assert path is not None
        first = path.read_text().strip()
        [record] = await store.list_api_keys()
        await store.revoke_api_key(record.key_id, 1.0)

        again = (await load_or_create_admin_key(tmp_path, store, environ={})).path
        second = path.read_text().strip()
        kept = (await load_or_create_admin_key(tmp_path, store, environ={})).path
    finally:
        await store.close()

    assert again == kept == path
    assert second != first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() == second  # a usable key is kept


async def test_load_or_create_admin_key_does_nothing_when_the_environment_has_one(tmp_path: Path) -> None:
    # Arrange
    store = await SqliteStore.open(tmp_path)
    try:
        # Act
        admin_key = await load_or_create_admin_key(tmp_path, store, environ={ADMIN_KEY_ENV: "k" * 32})
        keys = await store.list_api_keys()
    finally:
        await store.close()

    # Assert: the environment's key, and no other
    assert admin_key == AdminKey(configured="k" * 32, exclusive=True)
    assert "k" * 32 not in repr(admin_key)
    assert keys == []
    assert not (tmp_path / ADMIN_KEY_FILE).exists()


async def test_switching_to_the_environment_admin_key_revokes_the_generated_one(tmp_path: Path) -> None:
    # Arrange: a server ran with a generated admin key.
    store = await SqliteStore.open(tmp_path)
    try:
        path = (await load_or_create_admin_key(tmp_path, store, environ={})).path
        assert path is not None
        generated = path.read_text().strip()

        # Act: it starts again with TIDINGS_ADMIN_KEY.
        again = (await load_or_create_admin_key(tmp_path, store, environ={ADMIN_KEY_ENV: "k" * 32})).path
        auth = Authenticator(TokenSigner(b"s" * 32), AuthPolicy(allow_anonymous=False), admin_key="k" * 32)
        await auth.refresh(store)
        [record] = await store.list_api_keys()
    finally:
        await store.close()

    # Assert: exactly one admin key works.
    assert again is None
    assert not path.exists()
    assert record.revoked_at is not None
    with pytest.raises(Unauthenticated):
        auth.authenticate(generated)
    assert auth.authenticate("k" * 32).super_user


async def test_a_new_generated_admin_key_revokes_the_one_it_replaces(tmp_path: Path) -> None:
    # Arrange: the file of a usable generated key is lost.
    store = await SqliteStore.open(tmp_path)
    try:
        path = (await load_or_create_admin_key(tmp_path, store, environ={})).path
        assert path is not None
        path.unlink()

        # Act
        await load_or_create_admin_key(tmp_path, store, environ={})
        keys = await store.list_api_keys()
    finally:
        await store.close()

    # Assert
    assert [record.revoked_at is None for record in keys] == [False, True]
    assert path.read_text().startswith(f"tdk_{keys[1].key_id}_")


# --- parse_duration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("15m", 900),
        ("12h", 43_200),
        ("30d", 2_592_000),
        ("2w", 1_209_600),
        (" 5M ", 300),
        ("1H", 3600),
        ("007s", 7),
    ],
)
def test_parse_duration_reads_amounts_and_units(text: str, seconds: int) -> None:
    # Act / Assert
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "m", "5x", "-5m", "1.5h", "5 m", "5mm", "m5", "1y", "٣s", "0s", "99999999w"])
def test_parse_duration_refuses_other_text(text: str) -> None:
    # Act / Assert
    with pytest.raises(click.BadParameter):
        parse_duration(text)


# --- tidings key create|list|revoke --------------------------------------------------------------


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    """A data directory holding a store, as a server leaves it."""

    async def create() -> None:
        await (await SqliteStore.open(tmp_path)).close()

    asyncio.run(create())
    return tmp_path


def test_key_commands_refuse_a_data_dir_without_a_store(tmp_path: Path) -> None:
    code, out, err = _run("create", "--super-user", "--data-dir", str(tmp_path / "typo"))

    assert code == 2
    assert err.strip().splitlines() == [f"Error: data directory {tmp_path / 'typo'}: no tidings store here (start "
                                        "the server once, or check --data-dir)"]  # fmt: skip
    assert "tdk_" not in out
    assert not (tmp_path / "typo").exists()


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(key_command, list(args))
    return result.exit_code, result.stdout, result.stderr


def _list(data_dir: Path) -> list[dict[str, object]]:
    code, out, _ = _run("list", "--json", "--data-dir", str(data_dir))
    assert code == 0
    return [json.loads(line) for line in out.splitlines()]


def test_key_create_prints_a_key_that_authenticates_with_its_scopes(store_dir: Path) -> None:
    # Act
    code, out, err = _run(
        "create", "readonly:orders:ev-*", "writeonly:*:news", "--description", "ci", "--data-dir", str(store_dir)
    )

    # Assert
    assert code == 0, err
    printed = out.strip()
    assert printed.startswith("tdk_")
    assert "created" in err

    async def authenticate() -> object:
        store = await SqliteStore.open(store_dir)
        try:
            auth = Authenticator(TokenSigner(b"s" * 32), AuthPolicy(allow_anonymous=False))
            await auth.refresh(store)
        finally:
            await store.close()
        return auth.authenticate(printed)

    principal = asyncio.run(authenticate())
    assert principal.grants == (  # type: ignore[attr-defined]
        TopicGrant(TopicPermission.READ_ONLY, "orders", topic_prefix="ev-"),
        TopicGrant(TopicPermission.WRITE_ONLY, None, topic_name="news"),
    )


def test_key_list_shows_scopes_but_never_the_key(store_dir: Path) -> None:
    # Arrange
    _, created, _ = _run("create", "rw:orders", "--expires", "1h", "--description", "d", "--data-dir", str(store_dir))
    _, admin, _ = _run("create", "--super-user", "--data-dir", str(store_dir))

    # Act
    listed = _list(store_dir)
    code, table, _ = _run("list", "--data-dir", str(store_dir))

    # Assert
    assert [entry["scopes"] for entry in listed] == ["readwrite:orders:*", "super-user"]
    assert listed[0]["description"] == "d"
    assert isinstance(listed[0]["expires_at"], float)
    assert listed[1]["expires_at"] is None
    assert code == 0
    for secret_key in (created.strip(), admin.strip()):
        secret = secret_key.split("_", 2)[2]
        assert all(secret not in json.dumps(entry) for entry in listed)
        assert secret not in table


def test_key_revoke_marks_the_key_revoked_once(store_dir: Path) -> None:
    # Arrange
    _run("create", "rw:orders", "--data-dir", str(store_dir))
    key_id = str(_list(store_dir)[0]["id"])

    # Act
    first = _run("revoke", key_id, "--data-dir", str(store_dir))
    second = _run("revoke", key_id, "--data-dir", str(store_dir))

    # Assert
    assert first[0] == 0
    assert second[0] == 1
    assert second[2].startswith(f"Error: key {key_id} was already revoked at ")
    assert _list(store_dir)[0]["revoked_at"] is not None


def test_key_revoke_of_an_unknown_id_says_there_is_none(store_dir: Path) -> None:
    # Act
    code, _, err = _run("revoke", "nope", "--data-dir", str(store_dir))

    # Assert
    assert code == 1
    assert "no key with id 'nope'" in err


@pytest.mark.parametrize("columns", ["40", "80", "200"])
def test_key_list_shows_whole_ids_that_key_revoke_accepts(
    store_dir: Path, monkeypatch: pytest.MonkeyPatch, columns: str
) -> None:
    # Arrange: long descriptions and scopes squeeze the table.
    monkeypatch.setenv("COLUMNS", columns)
    for number in range(2):
        _run("create", "readwrite:a-long-cache-name:a-long-topic-prefix-*", "writeonly:another-long-cache-name",
             "readonly:yet-another-long-cache-name:with-a-long-topic-name", "--expires", "30d",
             "--description", f"key {number} of the pipeline that deploys the long-named service",
             "--data-dir", str(store_dir))  # fmt: skip
    ids = [str(entry["id"]) for entry in _list(store_dir)]

    # Act
    code, table, _ = _run("list", "--data-dir", str(store_dir))
    first_cells = [line.split("│")[1].strip() for line in table.splitlines() if line.startswith("│")]

    # Assert
    assert code == 0
    assert [cell for cell in first_cells if cell] == ids
    for key_id in ids:
        assert _run("revoke", key_id, "--data-dir", str(store_dir))[0] == 0


@pytest.mark.parametrize(
    "args",
    [
        pytest.param([], id="neither-scope-nor-super-user"),
        pytest.param(["--super-user", "rw:orders"], id="both"),
        pytest.param(["admin:orders"], id="bad-scope"),
        pytest.param(["rw:orders", "--expires", "soon"], id="bad-duration"),
    ],
)
def test_key_create_refuses_bad_usage_and_creates_nothing(store_dir: Path, args: list[str]) -> None:
    # Act
    code, out, _ = _run("create", *args, "--data-dir", str(store_dir))

    # Assert
    assert code == 2
    assert "tdk_" not in out
    assert _list(store_dir) == []
