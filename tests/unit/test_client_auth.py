"""Disposable token scopes and arguments in the SDK: `TopicScope` / `DisposableTokenScope` as Momento's
``Permissions`` (which the server must accept and read as the same grants), the CLI's scope syntax as SDK
scopes, the client-side checks of lifetime and token id, and the minted token's envelope."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from momento_wire_types import permissionmessages_pb2 as perm

from tidings import (
    ALL_CACHES,
    ALL_TOPICS,
    DisposableTokenScope,
    GenerateDisposableToken,
    TopicNamePrefix,
    TopicRole,
    TopicScope,
)
from tidings.cli._token import scope_of
from tidings.client._validation import lifetime_problem, token_id_problem
from tidings.server.auth import describe_grant, parse_scope
from tidings.server.core import TopicGrant
from tidings.server.core import TopicPermission as GrantRole
from tidings.server.grpc._auth import grants_from_permissions

GRANT_ROLE = {
    TopicRole.PUBLISH_SUBSCRIBE: GrantRole.READ_WRITE,
    TopicRole.SUBSCRIBE_ONLY: GrantRole.READ_ONLY,
    TopicRole.PUBLISH_ONLY: GrantRole.WRITE_ONLY,
}

names = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=20)
caches = st.one_of(st.just(ALL_CACHES), names)
topics = st.one_of(st.just(ALL_TOPICS), names, names.map(TopicNamePrefix))
topic_scopes = st.builds(TopicScope, st.sampled_from(TopicRole), caches, topics)


def expected_grant(scope: TopicScope) -> TopicGrant:
    """What the server should read ``scope`` as."""
    cache = None if scope.cache is ALL_CACHES else scope.cache
    match scope.topic:
        case TopicNamePrefix(prefix):
            return TopicGrant(GRANT_ROLE[scope.role], cache, topic_prefix=prefix)
        case str(name):
            return TopicGrant(GRANT_ROLE[scope.role], cache, topic_name=name)
    return TopicGrant(GRANT_ROLE[scope.role], cache)


def over_the_wire(permissions: perm.Permissions) -> perm.Permissions:
    return perm.Permissions.FromString(permissions.SerializeToString())


# --- scopes as Permissions ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scope", "role"),
    [
        pytest.param(TopicScope.publish_subscribe("c"), TopicRole.PUBLISH_SUBSCRIBE, id="publish_subscribe"),
        pytest.param(TopicScope.subscribe_only("c"), TopicRole.SUBSCRIBE_ONLY, id="subscribe_only"),
        pytest.param(TopicScope.publish_only("c"), TopicRole.PUBLISH_ONLY, id="publish_only"),
    ],
)
def test_client_auth_constructors_set_the_role_and_default_to_all_topics(scope: TopicScope, role: TopicRole) -> None:
    assert (scope.role, scope.cache, scope.topic) == (role, "c", ALL_TOPICS)


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        pytest.param(
            TopicScope.publish_subscribe(ALL_CACHES),
            perm.PermissionsType.TopicPermissions(
                role=perm.TopicReadWrite, all_caches=perm.PermissionsType.All(), all_topics=perm.PermissionsType.All()
            ),
            id="everything",
        ),
        pytest.param(
            TopicScope.subscribe_only("orders", "created"),
            perm.PermissionsType.TopicPermissions(
                role=perm.TopicReadOnly,
                cache_selector=perm.PermissionsType.CacheSelector(cache_name="orders"),
                topic_selector=perm.PermissionsType.TopicSelector(topic_name="created"),
            ),
            id="one-topic",
        ),
        pytest.param(
            TopicScope.publish_only("orders", TopicNamePrefix("events-")),
            perm.PermissionsType.TopicPermissions(
                role=perm.TopicWriteOnly,
                cache_selector=perm.PermissionsType.CacheSelector(cache_name="orders"),
                topic_selector=perm.PermissionsType.TopicSelector(topic_name_prefix="events-"),
            ),
            id="prefix",
        ),
    ],
)
def test_client_auth_scope_is_an_explicit_topic_permission(
    scope: TopicScope, expected: perm.PermissionsType.TopicPermissions
) -> None:
    permissions = DisposableTokenScope((scope,)).to_permissions()

    assert permissions == perm.Permissions(
        explicit=perm.ExplicitPermissions(permissions=[perm.PermissionsType(topic_permissions=expected)])
    )


@given(st.lists(topic_scopes, min_size=1, max_size=5))
def test_client_auth_permissions_are_accepted_as_the_same_grants(scopes: list[TopicScope]) -> None:
    permissions = DisposableTokenScope(tuple(scopes)).to_permissions()

    grants = grants_from_permissions(over_the_wire(permissions))

    assert grants == tuple(dict.fromkeys(expected_grant(scope) for scope in scopes))


@given(st.lists(topic_scopes, min_size=1, max_size=5))
def test_client_auth_or_combines_in_order_without_repeats(scopes: list[TopicScope]) -> None:
    combined = DisposableTokenScope()
    for scope in scopes:
        combined = combined | scope

    assert list(combined) == list(dict.fromkeys(scopes))
    assert len(combined) == len(set(scopes))


def test_client_auth_or_of_two_topic_scopes_is_a_token_scope() -> None:
    first, second = TopicScope.publish_only("c", "in"), TopicScope.subscribe_only("c", "out")

    combined = first | second | (first | second)

    assert combined == DisposableTokenScope((first, second))


def test_client_auth_or_with_something_else_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        TopicScope.publish_only("c") | "readonly:c"  # type: ignore[operator]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        pytest.param(lambda: TopicScope.publish_only(""), "cache must not be empty", id="empty-cache"),
        pytest.param(lambda: TopicScope.publish_only("c", ""), "topic must not be empty", id="empty-topic"),
        pytest.param(lambda: TopicScope.publish_only("c" * 256), "at most 255 bytes", id="long-cache"),
        pytest.param(lambda: TopicScope.publish_only("c", "a\nb"), "control characters", id="control-character"),
        pytest.param(lambda: TopicScope.publish_only(None), "must be a str", id="no-cache"),  # type: ignore[arg-type]
        pytest.param(lambda: TopicNamePrefix(""), "prefix must not be empty", id="empty-prefix"),
        pytest.param(lambda: TopicScope("publish", "c"), "role must be a TopicRole", id="bad-role"),  # type: ignore[arg-type]
        pytest.param(lambda: DisposableTokenScope(("readonly:c",)), "holds TopicScopes", id="not-a-scope"),  # type: ignore[arg-type]
    ],
)
def test_client_auth_bad_scopes_raise_value_error(build: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()  # type: ignore[operator]


def test_client_auth_sentinels_read_as_their_names() -> None:
    assert repr(TopicScope.publish_only(ALL_CACHES)) == (
        "TopicScope(role=<TopicRole.PUBLISH_ONLY: 'publish-only'>, cache=ALL_CACHES, topic=ALL_TOPICS)"
    )


# --- the CLI's scope syntax -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("readwrite:*", TopicScope.publish_subscribe(ALL_CACHES), id="everything"),
        pytest.param("readonly:orders:created", TopicScope.subscribe_only("orders", "created"), id="topic"),
        pytest.param(
            "writeonly:orders:events-*", TopicScope.publish_only("orders", TopicNamePrefix("events-")), id="prefix"
        ),
        pytest.param("subscribe-only:orders:*", TopicScope.subscribe_only("orders"), id="all-topics"),
    ],
)
def test_client_auth_cli_scopes_become_sdk_scopes(text: str, expected: TopicScope) -> None:
    assert scope_of(parse_scope(text)) == expected


def _writable_in_scope_syntax(scope: TopicScope) -> bool:
    cache_ok = scope.cache is ALL_CACHES or (":" not in scope.cache and scope.cache != "*")
    return cache_ok and not (isinstance(scope.topic, str) and scope.topic.endswith("*"))


@given(topic_scopes.filter(_writable_in_scope_syntax))
def test_client_auth_cli_scope_mints_what_key_create_grants(scope: TopicScope) -> None:
    parsed = parse_scope(describe_grant(expected_grant(scope)))

    minted = grants_from_permissions(DisposableTokenScope((scope_of(parsed),)).to_permissions())

    assert scope_of(parsed) == scope
    assert minted == (parsed,)


# --- lifetime and token id ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expires_in", [1, 60, 3600, timedelta(seconds=1), timedelta(minutes=15), timedelta(hours=1)], ids=repr
)
def test_client_auth_lifetimes_from_a_second_to_an_hour_are_accepted(expires_in: int | timedelta) -> None:
    assert lifetime_problem(expires_in) is None


@pytest.mark.parametrize(
    ("expires_in", "message"),
    [
        pytest.param(0, "1 second to 1 hour, not 0", id="zero"),
        pytest.param(-5, "1 second to 1 hour", id="negative"),
        pytest.param(3601, "not 3601 seconds", id="over-an-hour"),
        pytest.param(timedelta(hours=2), "not 7200 seconds", id="timedelta-over-an-hour"),
        pytest.param(timedelta(seconds=1.5), "whole seconds", id="fraction"),
        pytest.param(60.0, "int (seconds) or a timedelta, not float", id="float"),
        pytest.param(True, "not bool", id="bool"),
        pytest.param("15m", "not str", id="str"),
    ],
)
def test_client_auth_bad_lifetimes_are_refused(expires_in: object, message: str) -> None:
    problem = lifetime_problem(expires_in)

    assert problem is not None
    assert message in problem


@pytest.mark.parametrize(
    ("token_id", "problem"),
    [
        pytest.param(None, None, id="none"),
        pytest.param("browser-42", None, id="name"),
        pytest.param("x" * 64, None, id="64-characters"),
        pytest.param("é" * 64, None, id="64-non-ascii-characters"),
        pytest.param("x" * 65, "at most 64 characters, not 65", id="65-characters"),
        pytest.param("", "must not be empty", id="empty"),
        pytest.param(42, "must be a str or None, not int", id="int"),
    ],
)
def test_client_auth_token_ids_are_checked(token_id: object, problem: str | None) -> None:
    found = token_id_problem(token_id)

    assert found == problem or (problem is not None and found is not None and problem in found)


# --- the minted token -----------------------------------------------------------------------------


def test_client_auth_momento_token_is_the_official_sdks_envelope() -> None:
    minted = GenerateDisposableToken.Success("abc.def.ghi", "tidings.example:443", datetime.now(UTC), "t1")

    envelope = json.loads(base64.b64decode(minted.momento_token))

    assert envelope == {"endpoint": "tidings.example:443", "api_key": "abc.def.ghi"}


def test_client_auth_success_repr_hides_the_token() -> None:
    minted = GenerateDisposableToken.Success("secret-token", "localhost:8080", datetime.now(UTC))

    assert "secret-token" not in repr(minted)
