"""`Authenticator`: anonymous access by policy, the admin key, API keys, disposable tokens, Momento's
base64 envelope, the verification cache and key refresh from the SQLite store."""

from __future__ import annotations

import base64
import dataclasses
import json
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidings.server.auth import ApiKey, Authenticator, AuthPolicy, TokenSigner, new_api_key
from tidings.server.auth import _authenticator as authenticator_module
from tidings.server.auth._authenticator import MAX_CREDENTIAL_LENGTH, unwrap_envelope
from tidings.server.core import ANONYMOUS, Principal, TopicGrant, TopicPermission, Unauthenticated
from tidings.server.store.sqlite import SqliteStore

from ._support import FakeClock

SECRET = b"s" * 32
ADMIN_KEY = "the-admin-key-from-the-environment"
GRANTS = (TopicGrant(TopicPermission.READ_WRITE, "orders"),)


@pytest.fixture
def now() -> FakeClock:
    """A wall clock that starts at the real time (tokens carry real epoch seconds)."""
    return FakeClock(float(int(time.time())))


@pytest.fixture
def signer(now: FakeClock) -> TokenSigner:
    return TokenSigner(SECRET, wall_clock=now)


@pytest.fixture
def auth(signer: TokenSigner, now: FakeClock) -> Authenticator:
    """Anonymous access refused, an admin key from the environment."""
    return Authenticator(signer, AuthPolicy(allow_anonymous=False), admin_key=ADMIN_KEY, wall_clock=now)


def _envelope(api_key: str, *, padding: bool = True) -> str:
    encoded = base64.b64encode(json.dumps({"endpoint": "localhost:9000", "api_key": api_key}).encode()).decode()
    return encoded if padding else encoded.rstrip("=")


def _api_key(
    *,
    super_user: bool = False,
    grants: tuple[TopicGrant, ...] = GRANTS,
    expires_at: float | None = None,
    revoked_at: float | None = None,
) -> tuple[ApiKey, str]:
    key_id, key, secret_hash = new_api_key()
    record = ApiKey(key_id, secret_hash, super_user, grants, "test", 1.0, expires_at, revoked_at)
    return record, key


# --- anonymous and the admin key -----------------------------------------------------------------


@pytest.mark.parametrize("credential", [None, ""], ids=["none", "empty"])
def test_authenticator_serves_anonymous_as_super_user_when_allowed(signer: TokenSigner, credential: str | None) -> None:
    # Arrange
    auth = Authenticator(signer, AuthPolicy(allow_anonymous=True))

    # Act
    principal = auth.authenticate(credential)

    # Assert
    assert principal is ANONYMOUS
    assert principal.super_user


@pytest.mark.parametrize("credential", [None, ""], ids=["none", "empty"])
def test_authenticator_refuses_anonymous_when_not_allowed(auth: Authenticator, credential: str | None) -> None:
    # Act / Assert
    with pytest.raises(Unauthenticated, match="requires a token"):
        auth.authenticate(credential)


def test_authenticator_still_checks_credentials_when_anonymous_is_allowed(signer: TokenSigner) -> None:
    # Arrange
    auth = Authenticator(signer, AuthPolicy(allow_anonymous=True))

    # Act / Assert
    with pytest.raises(Unauthenticated):
        auth.authenticate("not-a-token")


def test_authenticator_accepts_the_admin_key_as_super_user(auth: Authenticator) -> None:
    # Act
    principal = auth.authenticate(ADMIN_KEY)

    # Assert
    assert principal.super_user
    assert principal.key_id == auth.admin_key_id
    assert auth.admin_key_id is not None
    assert ADMIN_KEY not in auth.admin_key_id


@pytest.mark.parametrize(
    "credential",
    [ADMIN_KEY + "x", ADMIN_KEY[:-1], ADMIN_KEY.upper(), " " + ADMIN_KEY],
    ids=["longer", "shorter", "case", "space"],
)
def test_authenticator_refuses_a_wrong_admin_key(auth: Authenticator, credential: str) -> None:
    # Act / Assert
    with pytest.raises(Unauthenticated):
        auth.authenticate(credential)


def test_authenticator_without_admin_key_refuses_any_guess(signer: TokenSigner) -> None:
    # Arrange
    auth = Authenticator(signer, AuthPolicy(allow_anonymous=False), admin_key=None)

    # Act / Assert
    with pytest.raises(Unauthenticated):
        auth.authenticate(ADMIN_KEY)


# --- disposable tokens ---------------------------------------------------------------------------


def test_authenticator_accepts_a_disposable_token(auth: Authenticator, signer: TokenSigner, now: FakeClock) -> None:
    # Arrange
    token, expires_at = signer.mint(GRANTS, 60, token_id="tid")

    # Act
    principal = auth.authenticate(token)

    # Assert
    assert principal == Principal(grants=GRANTS, token_id="tid", expires_at=expires_at, issued_at=now())


def test_authenticator_refuses_another_servers_token(auth: Authenticator, now: FakeClock) -> None:
    # Arrange
    token, _ = TokenSigner(b"o" * 32, wall_clock=now).mint(GRANTS, 60)

    # Act / Assert
    with pytest.raises(Unauthenticated):
        auth.authenticate(token)


def test_authenticator_refuses_a_one_mebibyte_credential(auth: Authenticator, signer: TokenSigner) -> None:
    # Arrange: a real token padded far beyond the limit.
    token, _ = signer.mint(GRANTS, 60)
    credential = token + "A" * (1 << 20)

    # Act / Assert
    with pytest.raises(Unauthenticated, match="too long"):
        auth.authenticate(credential)


def test_authenticator_refuses_a_credential_just_over_the_limit(auth: Authenticator) -> None:
    # Act / Assert
    with pytest.raises(Unauthenticated, match="too long"):
        auth.authenticate("a" * (MAX_CREDENTIAL_LENGTH + 1))


# --- the verification cache ----------------------------------------------------------------------


def test_authenticator_cache_returns_the_same_principal(auth: Authenticator, signer: TokenSigner) -> None:
    # Arrange
    token, _ = signer.mint(GRANTS, 60)

    # Act
    first = auth.authenticate(token)
    second = auth.authenticate(token)

    # Assert
    assert second is first


def test_authenticator_cache_refuses_a_cached_token_once_expired(
    auth: Authenticator, signer: TokenSigner, now: FakeClock
) -> None:
    # Arrange
    token, expires_at = signer.mint(GRANTS, 60)
    principal = auth.authenticate(token)

    # Act / Assert: still fine just before its expiry...
    now.now = expires_at - 0.001
    assert auth.authenticate(token) is principal

    # ...refused once it is reached.
    now.now = expires_at
    with pytest.raises(Unauthenticated, match="expired"):
        auth.authenticate(token)


def test_authenticator_keeps_refusing_an_expired_token_after_dropping_it_from_the_cache(
    auth: Authenticator, signer: TokenSigner, now: FakeClock
) -> None:
    # Arrange
    token, expires_at = signer.mint(GRANTS, 60)
    auth.authenticate(token)
    now.now = expires_at + 1
    with pytest.raises(Unauthenticated):
        auth.authenticate(token)

    # Act / Assert: the second attempt verifies the token afresh; it expired all the same.
    with pytest.raises(Unauthenticated, match="expired"):
        auth.authenticate(token)


def test_authenticator_cache_is_bounded(
    auth: Authenticator, signer: TokenSigner, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrange
    monkeypatch.setattr(authenticator_module, "CACHE_SIZE", 2)
    tokens = [signer.mint(GRANTS, 60, token_id=str(i))[0] for i in range(3)]
    first = auth.authenticate(tokens[0])

    # Act: two more evict the oldest.
    auth.authenticate(tokens[1])
    auth.authenticate(tokens[2])
    again = auth.authenticate(tokens[0])

    # Assert
    assert again == first
    assert again is not first
    assert auth.authenticate(tokens[2]) is auth.authenticate(tokens[2])


def test_authenticator_does_not_cache_refusals(auth: Authenticator) -> None:
    # Arrange
    record, key = _api_key()

    # Act: refused while unknown, accepted once loaded.
    with pytest.raises(Unauthenticated):
        auth.authenticate(key)
    auth.load_keys([record])

    # Assert
    assert auth.authenticate(key).key_id == record.key_id


# --- API keys ------------------------------------------------------------------------------------


def test_new_api_key_has_the_documented_shape() -> None:
    # Act
    key_id, key, secret_hash = new_api_key()

    # Assert
    assert key.startswith(f"tdk_{key_id}_")
    assert key.split("_", 2)[2] not in secret_hash
    assert len(secret_hash) == 64


def test_authenticator_accepts_a_restricted_api_key(auth: Authenticator) -> None:
    # Arrange
    record, key = _api_key(expires_at=None)
    auth.load_keys([record])

    # Act
    principal = auth.authenticate(key)

    # Assert
    assert principal == Principal(grants=GRANTS, key_id=record.key_id)
    assert principal.is_revocable


def test_authenticator_accepts_a_super_user_api_key(auth: Authenticator) -> None:
    # Arrange
    record, key = _api_key(super_user=True, grants=())
    auth.load_keys([record])

    # Act
    principal = auth.authenticate(key)

    # Assert
    assert principal.super_user
    assert principal.key_id == record.key_id


def test_authenticator_accepts_an_api_key_before_its_expiry(auth: Authenticator, now: FakeClock) -> None:
    # Arrange
    record, key = _api_key(expires_at=now() + 10)
    auth.load_keys([record])

    # Act
    principal = auth.authenticate(key)

    # Assert
    assert principal.expires_at == now() + 10


def test_authenticator_refuses_an_api_key_with_a_wrong_secret(auth: Authenticator) -> None:
    # Arrange
    record, key = _api_key()
    auth.load_keys([record])
    wrong = key[:-1] + ("A" if key[-1] != "A" else "B")

    # Act / Assert
    with pytest.raises(Unauthenticated, match="invalid API key"):
        auth.authenticate(wrong)


def test_authenticator_refuses_an_unknown_api_key_id(auth: Authenticator) -> None:
    # Arrange
    record, key = _api_key()
    auth.load_keys([record])
    secret = key.removeprefix(f"tdk_{record.key_id}_")

    # Act / Assert
    with pytest.raises(Unauthenticated, match="invalid API key"):
        auth.authenticate(f"tdk_unknown_{secret}")


def test_authenticator_refuses_a_revoked_api_key(auth: Authenticator) -> None:
    # Arrange
    record, key = _api_key(revoked_at=5.0)
    auth.load_keys([record])

    # Act / Assert
    with pytest.raises(Unauthenticated, match="invalid API key"):
        auth.authenticate(key)


def test_authenticator_refuses_an_expired_api_key(auth: Authenticator, now: FakeClock) -> None:
    # Arrange
    record, key = _api_key(expires_at=now())
    auth.load_keys([record])

    # Act / Assert
    with pytest.raises(Unauthenticated, match="expired"):
        auth.authenticate(key)


def test_authenticator_refuses_a_cached_api_key_once_expired(auth: Authenticator, now: FakeClock) -> None:
    # Arrange
    record, key = _api_key(expires_at=now() + 10)
    auth.load_keys([record])
    auth.authenticate(key)

    # Act
    now.advance(10)

    # Assert
    with pytest.raises(Unauthenticated, match="expired"):
        auth.authenticate(key)


@pytest.mark.parametrize("credential", ["tdk_", "tdk__secret", "tdk_id_", "tdk_id"], ids=str)
def test_authenticator_refuses_malformed_api_keys(auth: Authenticator, credential: str) -> None:
    # Act / Assert
    with pytest.raises(Unauthenticated):
        auth.authenticate(credential)


def test_load_keys_returns_ids_that_stopped_being_usable_and_clears_the_cache(auth: Authenticator) -> None:
    # Arrange
    kept, kept_key = _api_key()
    revoked, revoked_key = _api_key()
    removed, removed_key = _api_key()
    already_revoked, _ = _api_key(revoked_at=1.0)
    assert auth.load_keys([kept, revoked, removed, already_revoked]) == []
    kept_principal = auth.authenticate(kept_key)
    auth.authenticate(revoked_key)
    auth.authenticate(removed_key)

    # Act
    gone = auth.load_keys([kept, dataclasses.replace(revoked, revoked_at=2.0), already_revoked])

    # Assert
    assert gone == sorted([revoked.key_id, removed.key_id])
    for key in (revoked_key, removed_key):
        with pytest.raises(Unauthenticated):
            auth.authenticate(key)
    reverified = auth.authenticate(kept_key)
    assert reverified == kept_principal
    assert reverified is not kept_principal  # the cache was cleared


def test_load_keys_returns_nothing_when_nothing_stopped_being_usable(auth: Authenticator) -> None:
    # Arrange
    record, key = _api_key()
    auth.load_keys([record])
    principal = auth.authenticate(key)
    added, _ = _api_key()

    # Act
    gone = auth.load_keys([record, added])

    # Assert
    assert gone == []
    assert auth.authenticate(key) is principal  # the cache was kept


# --- Momento's base64 envelope -------------------------------------------------------------------


def test_unwrap_envelope_returns_the_api_key_inside() -> None:
    # Act / Assert
    assert unwrap_envelope(_envelope("abc.def.ghi")) == "abc.def.ghi"


@pytest.mark.parametrize("strip", [0, 1, 2], ids=["padded", "one-pad-stripped", "unpadded"])
def test_unwrap_envelope_accepts_padding_variants(strip: int) -> None:
    # Arrange: an api_key length whose envelope ends in "==", then strip none, one or both.
    length = next(n for n in range(20, 26) if _envelope("k" * n).endswith("=="))
    encoded = _envelope("k" * length)
    variant = encoded[: len(encoded) - strip]

    # Act / Assert
    assert unwrap_envelope(variant) == "k" * length


@pytest.mark.parametrize(
    "credential",
    [
        pytest.param(base64.b64encode(b"just some bytes").decode(), id="base64-not-json"),
        pytest.param(base64.b64encode(b'["api_key"]').decode(), id="base64-json-list"),
        pytest.param(base64.b64encode(b'{"endpoint": "x"}').decode(), id="no-api-key"),
        pytest.param(base64.b64encode(b'{"api_key": ""}').decode(), id="empty-api-key"),
        pytest.param(base64.b64encode(b'{"api_key": 42}').decode(), id="api-key-not-text"),
        pytest.param(base64.b64encode(b"\xff\xfe").decode(), id="base64-not-utf8"),
        pytest.param("not base64 at all!", id="not-base64"),
        pytest.param("abc.def.ghi", id="jwt"),
        pytest.param("tdk_id_secret", id="api-key"),
        pytest.param("a", id="one-character"),
    ],
)
def test_unwrap_envelope_leaves_anything_else_alone(credential: str) -> None:
    # Act / Assert
    assert unwrap_envelope(credential) == credential


def test_unwrap_envelope_leaves_deeply_nested_json_alone() -> None:
    # Arrange: base64 of 3000 '[' is 4000 characters, well under the credential limit.
    credential = base64.b64encode(b"[" * 3000).decode()

    # Act / Assert
    assert unwrap_envelope(credential) == credential


def test_authenticator_refuses_deeply_nested_base64_json_as_unauthenticated(auth: Authenticator) -> None:
    # Arrange
    credential = base64.b64encode(b"[" * 3000).decode()
    assert len(credential) <= MAX_CREDENTIAL_LENGTH

    # Act / Assert
    with pytest.raises(Unauthenticated):
        auth.authenticate(credential)


@pytest.mark.parametrize("padding", [True, False], ids=["padded", "unpadded"])
def test_authenticator_accepts_a_token_in_the_envelope(auth: Authenticator, signer: TokenSigner, padding: bool) -> None:
    # Arrange
    token, _ = signer.mint(GRANTS, 60, token_id="t")

    # Act
    principal = auth.authenticate(_envelope(token, padding=padding))

    # Assert
    assert (principal.grants, principal.token_id) == (GRANTS, "t")


def test_authenticator_accepts_an_api_key_and_the_admin_key_in_the_envelope(auth: Authenticator) -> None:
    # Arrange
    record, key = _api_key()
    auth.load_keys([record])

    # Act / Assert
    assert auth.authenticate(_envelope(key)).key_id == record.key_id
    assert auth.authenticate(_envelope(ADMIN_KEY)).super_user


def test_authenticator_refuses_an_envelope_around_garbage(auth: Authenticator) -> None:
    # Act / Assert
    with pytest.raises(Unauthenticated):
        auth.authenticate(_envelope("garbage"))


# --- fuzz ----------------------------------------------------------------------------------------

_credentials = st.one_of(
    st.text(),
    st.text(max_size=10_000),
    st.text(alphabet="._-=+/tdkA", max_size=60),
    st.builds(lambda text: "tdk_" + text, st.text()),
    st.builds(lambda raw: base64.b64encode(raw).decode(), st.binary(max_size=200)),
    st.builds(
        lambda value: base64.b64encode(json.dumps(value).encode()).decode(), st.dictionaries(st.text(), st.text())
    ),
    st.builds(lambda key: _envelope(key), st.text()),
)


@settings(max_examples=300, deadline=None)
@given(_credentials)
def test_authenticator_only_returns_a_principal_or_refuses(credential: str) -> None:
    # Arrange
    auth = Authenticator(TokenSigner(SECRET), AuthPolicy(allow_anonymous=False), admin_key=ADMIN_KEY)

    # Act
    try:
        principal = auth.authenticate(credential)
    except Unauthenticated:
        return

    # Assert: nothing random is a valid credential.
    raise AssertionError(f"accepted {credential!r} as {principal!r}")  # pragma: no cover


# --- refresh from the SQLite store ---------------------------------------------------------------


async def test_sqlite_store_bumps_the_keys_version_on_add_and_revoke(tmp_path: Path) -> None:
    # Arrange
    store = await SqliteStore.open(tmp_path)
    try:
        record, _ = _api_key()
        initial = await store.api_keys_version()

        # Act
        await store.add_api_key(record)
        after_add = await store.api_keys_version()
        revoked = await store.revoke_api_key(record.key_id, 123.0)
        after_revoke = await store.api_keys_version()
        revoked_again = await store.revoke_api_key(record.key_id, 456.0)
        unknown = await store.revoke_api_key("nope", 1.0)
        keys = await store.list_api_keys()
    finally:
        await store.close()

    # Assert
    assert initial == 0
    assert initial < after_add < after_revoke
    assert (revoked, revoked_again, unknown) == (True, False, False)
    assert keys == [dataclasses.replace(record, revoked_at=123.0)]


async def test_sqlite_store_round_trips_api_keys(tmp_path: Path) -> None:
    # Arrange
    grants = (TopicGrant(TopicPermission.READ_ONLY, "c", topic_prefix="p"), TopicGrant(TopicPermission.WRITE_ONLY))
    record = ApiKey("k1", "h" * 64, False, grants, "desc ü", 10.5, 99.5, None)
    admin = ApiKey("k2", "g" * 64, True, (), "", 11.0)
    store = await SqliteStore.open(tmp_path)
    try:
        # Act
        await store.add_api_key(record)
        await store.add_api_key(admin)
        keys = await store.list_api_keys()
    finally:
        await store.close()

    # Assert
    assert keys == [record, admin]


async def test_authenticator_refresh_picks_up_keys_and_reports_a_revocation_once(
    tmp_path: Path, auth: Authenticator
) -> None:
    # Arrange
    store = await SqliteStore.open(tmp_path)
    try:
        record, key = _api_key()
        await store.add_api_key(record)

        # Act
        first = await auth.refresh(store)
        principal = auth.authenticate(key)
        unchanged = await auth.refresh(store)
        await store.revoke_api_key(record.key_id, time.time())
        after_revoke = await auth.refresh(store)
        again = await auth.refresh(store)
        other, _ = _api_key()
        await store.add_api_key(other)
        after_add = await auth.refresh(store)
    finally:
        await store.close()

    # Assert
    assert first.key_ids == []
    assert principal.key_id == record.key_id
    assert unchanged.key_ids == []
    assert after_revoke.key_ids == [record.key_id]
    assert again.key_ids == []
    assert after_add.key_ids == []
    with pytest.raises(Unauthenticated):
        auth.authenticate(key)


# --- revoking the tokens a key minted, and tokens by id ------------------------------------------


def test_authenticator_refuses_tokens_minted_by_a_key_once_it_is_revoked(
    auth: Authenticator, signer: TokenSigner
) -> None:
    # Arrange
    minter, _ = _api_key(super_user=True, grants=())
    other, _ = _api_key(super_user=True, grants=())
    auth.load_keys([minter, other])
    token, _ = signer.mint(GRANTS, 60, minted_by=minter.key_id)
    kept, _ = signer.mint(GRANTS, 60, minted_by=other.key_id)
    assert auth.authenticate(token).key_id == minter.key_id

    # Act
    gone = auth.load_keys([dataclasses.replace(minter, revoked_at=2.0), other])

    # Assert
    assert gone == [minter.key_id]
    with pytest.raises(Unauthenticated, match="minted this token was revoked"):
        auth.authenticate(token)
    assert auth.authenticate(kept).key_id == other.key_id


def test_authenticator_refuses_tokens_minted_by_an_unknown_key(auth: Authenticator, signer: TokenSigner) -> None:
    # Arrange
    token, _ = signer.mint(GRANTS, 60, minted_by="no-such-key")

    # Act / Assert
    with pytest.raises(Unauthenticated, match="minted this token was revoked"):
        auth.authenticate(token)


def test_authenticator_accepts_tokens_of_its_admin_key_but_not_of_another(
    auth: Authenticator, signer: TokenSigner, now: FakeClock
) -> None:
    # Arrange
    assert auth.admin_key_id is not None
    mine, _ = signer.mint(GRANTS, 60, minted_by=auth.admin_key_id)
    other = Authenticator(signer, AuthPolicy(allow_anonymous=False), admin_key="another-admin-key", wall_clock=now)

    # Act / Assert
    assert auth.authenticate(mine).grants == GRANTS
    with pytest.raises(Unauthenticated, match="minted this token was revoked"):
        other.authenticate(mine)


def test_authenticator_refuses_a_revoked_token_id_minted_until_the_revocation(
    auth: Authenticator, signer: TokenSigner, now: FakeClock
) -> None:
    # Arrange
    before, _ = signer.mint(GRANTS, 60, token_id="browser-1")
    other_id, _ = signer.mint(GRANTS, 60, token_id="browser-2")
    no_id, _ = signer.mint(GRANTS, 60)
    auth.authenticate(before)
    revoked_at = now.advance(1)

    # Act
    changed = auth.load_revoked_tokens({"browser-1": revoked_at})
    now.advance(1)
    after, _ = signer.mint(GRANTS, 60, token_id="browser-1")

    # Assert
    assert changed == {"browser-1": revoked_at}
    with pytest.raises(Unauthenticated, match="revoked"):
        auth.authenticate(before)
    assert auth.authenticate(other_id).token_id == "browser-2"
    assert auth.authenticate(no_id).token_id == ""
    assert auth.authenticate(after).token_id == "browser-1"  # minted after the revocation
    assert auth.load_revoked_tokens({"browser-1": revoked_at}) == {}  # nothing new


async def test_authenticator_refresh_reports_revoked_keys_and_tokens_from_the_store(
    tmp_path: Path, signer: TokenSigner, now: FakeClock
) -> None:
    # Arrange
    store = await SqliteStore.open(tmp_path)
    try:
        record, _ = _api_key(super_user=True, grants=())
        await store.add_api_key(record)
        auth = Authenticator(signer, AuthPolicy(allow_anonymous=False), wall_clock=now)
        await auth.refresh(store)
        token, _ = signer.mint(GRANTS, 60, token_id="t-1", minted_by=record.key_id)
        assert auth.authenticate(token).token_id == "t-1"

        # Act
        await store.revoke_api_key(record.key_id, now())
        await store.revoke_token("t-1", now())
        revoked = await auth.refresh(store)
        again = await auth.refresh(store)
    finally:
        await store.close()

    # Assert
    assert revoked.key_ids == [record.key_id]
    assert revoked.token_ids == {"t-1": now()}
    assert not again
    with pytest.raises(Unauthenticated):
        auth.authenticate(token)
