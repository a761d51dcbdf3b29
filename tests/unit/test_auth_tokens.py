"""Disposable tokens: `TokenSigner` mints HS256 tokens and verifies them without I/O; anything else it is
handed is refused with `Unauthenticated` (PROTOCOL.md *Tokens and permissions*)."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidings.server.auth import MAX_TOKEN_LIFETIME, TokenSigner
from tidings.server.auth._tokens import MAX_TOKEN_ID_LENGTH
from tidings.server.core import InvalidArgument, Principal, TopicGrant, TopicPermission, Unauthenticated

from ._support import FakeClock

SECRET = b"s" * 32
OTHER_SECRET = b"o" * 32
GRANTS = (TopicGrant(TopicPermission.READ_ONLY, "orders", topic_prefix="ev-"),)


@pytest.fixture
def now() -> FakeClock:
    """A wall clock that starts at the real time (tokens carry real epoch seconds)."""
    return FakeClock(float(int(time.time())))


@pytest.fixture
def signer(now: FakeClock) -> TokenSigner:
    return TokenSigner(SECRET, wall_clock=now)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segments(token: str) -> list[str]:
    segments = token.split(".")
    assert len(segments) == 3
    return segments


def _claims(token: str) -> dict[str, object]:
    payload = _segments(token)[1]
    decoded: dict[str, object] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return decoded


# --- mint and verify -----------------------------------------------------------------------------


def test_token_signer_round_trips_grants_and_token_id(signer: TokenSigner, now: FakeClock) -> None:
    # Act
    token, expires_at = signer.mint(GRANTS, 600, token_id="user-42")
    principal = signer.verify(token)

    # Assert
    assert expires_at == int(now()) + 600
    assert principal == Principal(grants=GRANTS, token_id="user-42", expires_at=expires_at, issued_at=now())
    assert not principal.super_user
    assert principal.key_id is None


def test_token_signer_records_the_key_that_minted_it(signer: TokenSigner) -> None:
    # Act
    token, _ = signer.mint(GRANTS, 60, minted_by="k1")

    # Assert
    assert signer.verify(token).key_id == "k1"
    assert _claims(token)["k"] == "k1"


def test_token_signer_without_token_id_gives_an_empty_one(signer: TokenSigner) -> None:
    # Act
    token, _ = signer.mint(GRANTS, 60)

    # Assert
    assert signer.verify(token).token_id == ""
    assert "tid" not in _claims(token)


def test_token_signer_round_trips_several_grants_in_order(signer: TokenSigner) -> None:
    # Arrange
    grants = (
        TopicGrant(TopicPermission.WRITE_ONLY, "a", topic_name="t"),
        TopicGrant(TopicPermission.READ_WRITE),
        TopicGrant(TopicPermission.READ_ONLY, None, topic_prefix=""),
    )

    # Act
    token, _ = signer.mint(grants, 60)

    # Assert
    assert signer.verify(token).grants == grants


def test_token_signer_token_is_a_three_part_hs256_jwt(signer: TokenSigner) -> None:
    # Act
    token, _ = signer.mint(GRANTS, 60)

    # Assert
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "HS256"
    assert _claims(token)["iss"] == "tidings"


@pytest.mark.parametrize("valid_for", [1, 60, MAX_TOKEN_LIFETIME])
def test_token_signer_mints_lifetimes_within_bounds(signer: TokenSigner, now: FakeClock, valid_for: int) -> None:
    # Act
    token, expires_at = signer.mint(GRANTS, valid_for)

    # Assert
    assert expires_at == int(now()) + valid_for
    assert signer.verify(token).grants == GRANTS


@pytest.mark.parametrize("valid_for", [0, -1, MAX_TOKEN_LIFETIME + 1, 86_400])
def test_token_signer_refuses_lifetimes_out_of_bounds(signer: TokenSigner, valid_for: int) -> None:
    # Act / Assert
    with pytest.raises(InvalidArgument, match="expiry"):
        signer.mint(GRANTS, valid_for)


def test_token_signer_accepts_a_token_id_of_the_maximum_length(signer: TokenSigner) -> None:
    # Arrange
    token_id = "é" * MAX_TOKEN_ID_LENGTH

    # Act
    token, _ = signer.mint(GRANTS, 60, token_id=token_id)

    # Assert
    assert MAX_TOKEN_ID_LENGTH == 64
    assert signer.verify(token).token_id == token_id


def test_token_signer_refuses_a_token_id_one_too_long(signer: TokenSigner) -> None:
    # Act / Assert
    with pytest.raises(InvalidArgument, match="token_id"):
        signer.mint(GRANTS, 60, token_id="x" * (MAX_TOKEN_ID_LENGTH + 1))


def test_token_signer_refuses_empty_grants(signer: TokenSigner) -> None:
    # Act / Assert
    with pytest.raises(InvalidArgument, match="permission"):
        signer.mint((), 60)


def test_token_signer_refuses_a_short_secret() -> None:
    # Act / Assert
    with pytest.raises(ValueError, match="32 bytes"):
        TokenSigner(b"s" * 31)


# --- expiry --------------------------------------------------------------------------------------


def test_token_signer_refuses_a_token_long_expired(now: FakeClock) -> None:
    # Arrange: minted two hours ago for one hour.
    token, _ = TokenSigner(SECRET, wall_clock=lambda: now() - 7200).mint(GRANTS, 3600)

    # Act / Assert
    with pytest.raises(Unauthenticated, match="expired"):
        TokenSigner(SECRET, wall_clock=now).verify(token)


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.999])
def test_token_signer_token_lasts_at_least_its_lifetime_and_stops_at_its_expiry(fraction: float) -> None:
    # Arrange: minted part-way through a second (int() truncation once cut "3 s" tokens to 2.1 s).
    now = FakeClock(float(int(time.time())) + fraction)
    signer = TokenSigner(SECRET, wall_clock=now)
    minted_at = now()
    token, expires_at = signer.mint(GRANTS, 3)

    # Act / Assert: valid for the whole lifetime asked for...
    assert expires_at >= minted_at + 3
    now.now = minted_at + 3 - 0.001
    assert signer.verify(token).expires_at == expires_at
    now.now = expires_at - 0.001
    assert signer.verify(token).grants == GRANTS

    # ...and refused from the expiry it was minted with, without any allowance.
    now.now = expires_at
    with pytest.raises(Unauthenticated, match="expired"):
        signer.verify(token)
    assert expires_at - minted_at < 4


def test_token_signer_accepts_no_clock_skew_past_expiry() -> None:
    # Arrange: expired 1 s ago by the real clock.
    start = time.time()
    token, _ = TokenSigner(SECRET, wall_clock=lambda: start - 60 - 1).mint(GRANTS, 60)

    # Act / Assert
    with pytest.raises(Unauthenticated, match="expired"):
        TokenSigner(SECRET).verify(token)


# --- foreign, tampered and forged tokens ---------------------------------------------------------


def test_token_signer_refuses_another_secrets_token(signer: TokenSigner, now: FakeClock) -> None:
    # Arrange
    token, _ = TokenSigner(OTHER_SECRET, wall_clock=now).mint(GRANTS, 60)

    # Act / Assert
    with pytest.raises(Unauthenticated, match="invalid token"):
        signer.verify(token)


def test_token_signer_refuses_a_tampered_header(signer: TokenSigner) -> None:
    # Arrange
    token, _ = signer.mint(GRANTS, 60)
    _, payload, signature = _segments(token)
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "x"}).encode())

    # Act / Assert
    with pytest.raises(Unauthenticated):
        signer.verify(f"{header}.{payload}.{signature}")


def test_token_signer_refuses_a_tampered_payload(signer: TokenSigner) -> None:
    # Arrange: widen the grants to every topic of every cache, keep the signature.
    token, _ = signer.mint(GRANTS, 60)
    header, _, signature = _segments(token)
    claims = _claims(token) | {"g": [{"r": "rw", "c": None, "t": None, "p": None}]}
    payload = _b64url(json.dumps(claims).encode())

    # Act / Assert
    with pytest.raises(Unauthenticated):
        signer.verify(f"{header}.{payload}.{signature}")


def test_token_signer_refuses_a_tampered_token_id(signer: TokenSigner) -> None:
    # Arrange
    token, _ = signer.mint(GRANTS, 60, token_id="alice")
    header, _, signature = _segments(token)
    payload = _b64url(json.dumps(_claims(token) | {"tid": "bob"}).encode())

    # Act / Assert
    with pytest.raises(Unauthenticated):
        signer.verify(f"{header}.{payload}.{signature}")


@pytest.mark.parametrize("position", [0, 10, 20, 30])
def test_token_signer_refuses_a_tampered_signature(signer: TokenSigner, position: int) -> None:
    # Arrange (not the last character: its low bits are padding)
    token, _ = signer.mint(GRANTS, 60)
    header, payload, signature = _segments(token)
    flipped = "B" if signature[position] == "A" else "A"
    tampered = signature[:position] + flipped + signature[position + 1 :]

    # Act / Assert
    with pytest.raises(Unauthenticated):
        signer.verify(f"{header}.{payload}.{tampered}")


def test_token_signer_refuses_a_token_without_signature(signer: TokenSigner) -> None:
    # Arrange
    token, _ = signer.mint(GRANTS, 60)
    header, payload, _ = _segments(token)

    # Act / Assert
    with pytest.raises(Unauthenticated):
        signer.verify(f"{header}.{payload}.")


def test_token_signer_refuses_an_alg_none_token(signer: TokenSigner, now: FakeClock) -> None:
    # Arrange: valid claims, no signature.
    claims = {"iss": "tidings", "iat": int(now()), "exp": int(now()) + 60, "g": [{"r": "rw"}]}
    header = _b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    payload = _b64url(json.dumps(claims).encode())

    # Act / Assert
    for token in (f"{header}.{payload}.", jwt.encode(claims, None, algorithm="none")):
        with pytest.raises(Unauthenticated):
            signer.verify(token)


def test_token_signer_refuses_other_hmac_algorithms(now: FakeClock) -> None:
    # Arrange: right secret (long enough for HS512), HS512 instead of HS256.
    secret = b"k" * 64
    claims = {"iss": "tidings", "iat": int(now()), "exp": int(now()) + 60, "g": [{"r": "rw"}]}
    token = jwt.encode(claims, secret, algorithm="HS512")

    # Act / Assert
    with pytest.raises(Unauthenticated):
        TokenSigner(secret, wall_clock=now).verify(token)


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"iss": None}, id="no-issuer"),
        pytest.param({"iss": "momento"}, id="other-issuer"),
        pytest.param({"exp": None}, id="no-expiry"),
        pytest.param({"iat": None}, id="no-issued-at"),
        pytest.param({"g": None}, id="no-grants"),
        pytest.param({"g": "rw"}, id="grants-not-a-list"),
        pytest.param({"g": [{"r": "admin"}]}, id="unknown-role"),
        pytest.param({"g": [{"r": "rw", "t": "a", "p": "a"}]}, id="name-and-prefix"),
        pytest.param({"tid": 42}, id="token-id-not-text"),
        pytest.param({"exp": "soon"}, id="expiry-not-a-number"),
    ],
)
def test_token_signer_refuses_correctly_signed_malformed_claims(
    signer: TokenSigner, now: FakeClock, changes: dict[str, object]
) -> None:
    # Arrange: signed with the right secret, so only the claims are wrong.
    claims: dict[str, object] = {"iss": "tidings", "iat": int(now()), "exp": int(now()) + 60, "g": [{"r": "rw"}]}
    claims.update(changes)
    token = jwt.encode({k: v for k, v in claims.items() if v is not None}, SECRET, algorithm="HS256")

    # Act / Assert
    with pytest.raises(Unauthenticated):
        signer.verify(token)


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("", id="empty"),
        pytest.param("garbage", id="one-part"),
        pytest.param("a.b", id="two-parts"),
        pytest.param("a.b.c", id="three-parts"),
        pytest.param("....", id="dots"),
        pytest.param("é.ü.ß", id="unicode"),
        pytest.param("x" * (1 << 20), id="one-mebibyte"),
        pytest.param(_b64url(b"[" * 5000) + "." + _b64url(b"{}") + ".c2ln", id="deep-header"),
        pytest.param(_b64url(b'{"alg":"HS256"}') + "." + _b64url(b"[" * 5000) + ".c2ln", id="deep-payload"),
    ],
)
def test_token_signer_refuses_garbage(signer: TokenSigner, token: str) -> None:
    # Act / Assert
    with pytest.raises(Unauthenticated):
        signer.verify(token)


_jwt_like = st.lists(st.text(alphabet="ABCDEFabcdef0123456789-_=+/", max_size=40), min_size=1, max_size=5).map(".".join)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(),
        st.text(max_size=20_000),
        st.text(alphabet=".", max_size=50),
        _jwt_like,
        st.builds(lambda part, n: ".".join([part] * n), st.text(max_size=30), st.integers(0, 6)),
    )
)
def test_token_signer_verify_only_returns_a_principal_or_refuses(token: str) -> None:
    # Arrange
    signer = TokenSigner(SECRET)

    # Act
    try:
        result = signer.verify(token)
    except Unauthenticated:
        return

    # Assert
    assert isinstance(result, Principal)  # pragma: no cover - nothing random carries our signature
