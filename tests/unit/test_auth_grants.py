"""Topic grants: what `TopicGrant.covers` and `Principal.may` allow, the scope syntax, grant JSON, and
Momento's ``Permissions`` message as grants (PROTOCOL.md *Tokens and permissions*)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from momento_wire_types import permissionmessages_pb2 as perm

from tidings.server.auth import ScopeSyntaxError, grants_from_json, grants_to_json, parse_scope
from tidings.server.auth._grants import describe_grant
from tidings.server.core import ANONYMOUS, InvalidArgument, Principal, TopicGrant, TopicPermission
from tidings.server.grpc._auth import grants_from_permissions

PUBLISH = TopicPermission.PUBLISH
SUBSCRIBE = TopicPermission.SUBSCRIBE
ROLES = (TopicPermission.READ_WRITE, TopicPermission.READ_ONLY, TopicPermission.WRITE_ONLY)

# --- TopicGrant.covers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "publish", "subscribe"),
    [
        pytest.param(TopicPermission.READ_WRITE, True, True, id="readwrite"),
        pytest.param(TopicPermission.READ_ONLY, False, True, id="readonly"),
        pytest.param(TopicPermission.WRITE_ONLY, True, False, id="writeonly"),
    ],
)
def test_grant_covers_the_actions_of_its_role(role: TopicPermission, publish: bool, subscribe: bool) -> None:
    # Arrange
    grant = TopicGrant(role)

    # Act / Assert
    assert grant.covers(PUBLISH, "cache", "topic") is publish
    assert grant.covers(SUBSCRIBE, "cache", "topic") is subscribe


@pytest.mark.parametrize(
    ("grant", "cache", "topic", "expected"),
    [
        pytest.param(TopicGrant(TopicPermission.READ_WRITE), "any", "thing", True, id="all-caches-all-topics"),
        pytest.param(TopicGrant(TopicPermission.READ_WRITE, "orders"), "orders", "x", True, id="one-cache-same"),
        pytest.param(TopicGrant(TopicPermission.READ_WRITE, "orders"), "other", "x", False, id="one-cache-other"),
        pytest.param(
            TopicGrant(TopicPermission.READ_WRITE, "orders"), "orders2", "x", False, id="one-cache-not-prefix"
        ),
        pytest.param(
            TopicGrant(TopicPermission.READ_WRITE, topic_name="news"), "c", "news", True, id="topic-name-same"
        ),
        pytest.param(
            TopicGrant(TopicPermission.READ_WRITE, topic_name="news"), "c", "news2", False, id="topic-name-longer"
        ),
        pytest.param(
            TopicGrant(TopicPermission.READ_WRITE, topic_name="news"), "c", "new", False, id="topic-name-shorter"
        ),
        pytest.param(TopicGrant(TopicPermission.READ_WRITE, topic_prefix="ev-"), "c", "ev-1", True, id="prefix-match"),
        pytest.param(TopicGrant(TopicPermission.READ_WRITE, topic_prefix="ev-"), "c", "ev-", True, id="prefix-equal"),
        pytest.param(
            TopicGrant(TopicPermission.READ_WRITE, topic_prefix="ev-"), "c", "ev", False, id="prefix-too-short"
        ),
        pytest.param(
            TopicGrant(TopicPermission.READ_WRITE, topic_prefix="ev-"), "c", "xev-1", False, id="prefix-inside"
        ),
        pytest.param(
            TopicGrant(TopicPermission.READ_WRITE, topic_prefix=""), "c", "anything", True, id="empty-prefix-all"
        ),
        pytest.param(
            TopicGrant(TopicPermission.READ_WRITE, "a", topic_prefix="t"), "b", "t1", False, id="prefix-other-cache"
        ),
        pytest.param(TopicGrant(TopicPermission.READ_WRITE, "a", topic_name="t"), "a", "t", True, id="cache-and-topic"),
    ],
)
def test_grant_covers_selected_caches_and_topics(grant: TopicGrant, cache: str, topic: str, expected: bool) -> None:
    # Act / Assert
    assert grant.covers(PUBLISH, cache, topic) is expected
    assert grant.covers(SUBSCRIBE, cache, topic) is expected


def test_grant_refuses_both_topic_name_and_prefix() -> None:
    # Act / Assert
    with pytest.raises(ValueError, match="not both"):
        TopicGrant(TopicPermission.READ_WRITE, topic_name="a", topic_prefix="a")


# --- Principal.may -------------------------------------------------------------------------------


def test_principal_super_user_may_everything_without_grants() -> None:
    # Act / Assert
    assert Principal(super_user=True).may(PUBLISH, "c", "t")
    assert ANONYMOUS.may(SUBSCRIBE, "c", "t")
    assert ANONYMOUS.super_user


def test_principal_without_grants_may_nothing() -> None:
    # Act / Assert
    assert not Principal().may(PUBLISH, "c", "t")
    assert not Principal().may(SUBSCRIBE, "c", "t")


def test_principal_may_what_any_of_its_grants_covers() -> None:
    # Arrange
    principal = Principal(
        grants=(
            TopicGrant(TopicPermission.READ_ONLY, "a"),
            TopicGrant(TopicPermission.WRITE_ONLY, "b", topic_prefix="p"),
        )
    )

    # Act / Assert
    assert principal.may(SUBSCRIBE, "a", "x")
    assert not principal.may(PUBLISH, "a", "x")
    assert principal.may(PUBLISH, "b", "p1")
    assert not principal.may(SUBSCRIBE, "b", "p1")
    assert not principal.may(PUBLISH, "b", "q")


@pytest.mark.parametrize(
    ("principal", "revocable"),
    [
        pytest.param(ANONYMOUS, False, id="anonymous"),
        pytest.param(Principal(super_user=True), False, id="admin-env-key"),
        pytest.param(Principal(key_id="k"), True, id="api-key"),
        pytest.param(Principal(expires_at=1.0), True, id="expiring"),
    ],
)
def test_principal_is_revocable_with_a_key_or_an_expiry(principal: Principal, revocable: bool) -> None:
    # Act / Assert
    assert principal.is_revocable is revocable


# Small alphabets so that names and prefixes often match.
_names = st.text(alphabet="ab", min_size=1, max_size=3)
_prefixes = st.text(alphabet="ab", max_size=3)


@st.composite
def _grants(draw: st.DrawFn) -> TopicGrant:
    role = draw(st.sampled_from(ROLES))
    cache = draw(st.none() | _names)
    selector = draw(st.sampled_from(["all", "name", "prefix"]))
    if selector == "name":
        return TopicGrant(role, cache, topic_name=draw(_names))
    if selector == "prefix":
        return TopicGrant(role, cache, topic_prefix=draw(_prefixes))
    return TopicGrant(role, cache)


def _model_may(principal: Principal, action: TopicPermission, cache: str, topic: str) -> bool:
    """What PROTOCOL.md says, written out plainly."""
    if principal.super_user:
        return True
    for grant in principal.grants:
        if action is PUBLISH:
            role_ok = grant.role in (TopicPermission.READ_WRITE, TopicPermission.WRITE_ONLY)
        else:
            role_ok = grant.role in (TopicPermission.READ_WRITE, TopicPermission.READ_ONLY)
        cache_ok = grant.cache_name is None or grant.cache_name == cache
        if grant.topic_name is not None:
            topic_ok = grant.topic_name == topic
        elif grant.topic_prefix is not None:
            topic_ok = topic[: len(grant.topic_prefix)] == grant.topic_prefix
        else:
            topic_ok = True
        if role_ok and cache_ok and topic_ok:
            return True
    return False


@given(
    super_user=st.booleans(),
    grants=st.lists(_grants(), max_size=4),
    action=st.sampled_from([PUBLISH, SUBSCRIBE]),
    cache=_names,
    topic=_names,
)
def test_principal_may_agrees_with_a_plain_model(
    super_user: bool, grants: list[TopicGrant], action: TopicPermission, cache: str, topic: str
) -> None:
    # Arrange
    principal = Principal(super_user=super_user, grants=tuple(grants))

    # Act / Assert
    assert principal.may(action, cache, topic) is _model_may(principal, action, cache, topic)


# --- parse_scope and describe_grant --------------------------------------------------------------


@pytest.mark.parametrize(
    ("spelling", "role"),
    [
        ("readwrite", TopicPermission.READ_WRITE),
        ("publish-subscribe", TopicPermission.READ_WRITE),
        ("rw", TopicPermission.READ_WRITE),
        ("ReadWrite", TopicPermission.READ_WRITE),
        ("readonly", TopicPermission.READ_ONLY),
        ("subscribe-only", TopicPermission.READ_ONLY),
        ("ro", TopicPermission.READ_ONLY),
        ("writeonly", TopicPermission.WRITE_ONLY),
        ("publish-only", TopicPermission.WRITE_ONLY),
        ("wo", TopicPermission.WRITE_ONLY),
        (" WO ", TopicPermission.WRITE_ONLY),
    ],
)
def test_parse_scope_reads_every_role_spelling(spelling: str, role: TopicPermission) -> None:
    # Act
    grant = parse_scope(f"{spelling}:orders")

    # Assert
    assert grant == TopicGrant(role, "orders")


@pytest.mark.parametrize(
    ("text", "grant"),
    [
        pytest.param("rw:orders", TopicGrant(TopicPermission.READ_WRITE, "orders"), id="cache-only"),
        pytest.param("rw:*", TopicGrant(TopicPermission.READ_WRITE), id="all-caches"),
        pytest.param("rw:*:*", TopicGrant(TopicPermission.READ_WRITE), id="all-caches-all-topics"),
        pytest.param("rw:orders:", TopicGrant(TopicPermission.READ_WRITE, "orders"), id="empty-topic-is-all"),
        pytest.param("rw:orders:*", TopicGrant(TopicPermission.READ_WRITE, "orders"), id="star-topic"),
        pytest.param("rw:orders:news", TopicGrant(TopicPermission.READ_WRITE, "orders", topic_name="news"), id="topic"),
        pytest.param(
            "rw:orders:ev-*", TopicGrant(TopicPermission.READ_WRITE, "orders", topic_prefix="ev-"), id="prefix"
        ),
        pytest.param("rw:*:ev-*", TopicGrant(TopicPermission.READ_WRITE, topic_prefix="ev-"), id="prefix-all-caches"),
        pytest.param("rw:c:a:b", TopicGrant(TopicPermission.READ_WRITE, "c", topic_name="a:b"), id="colon-in-topic"),
    ],
)
def test_parse_scope_reads_cache_and_topic_selectors(text: str, grant: TopicGrant) -> None:
    # Act / Assert
    assert parse_scope(text) == grant


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("readwrite", id="no-cache"),
        pytest.param("readwrite:", id="empty-rest"),
        pytest.param("readwrite::topic", id="empty-cache"),
        pytest.param("admin:orders", id="unknown-role"),
        pytest.param("read-write:orders", id="misspelt-role"),
        pytest.param(":orders", id="no-role"),
        pytest.param("orders", id="cache-only"),
    ],
)
def test_parse_scope_refuses_malformed_scopes(text: str) -> None:
    # Act / Assert
    with pytest.raises(ScopeSyntaxError):
        parse_scope(text)


def test_scope_syntax_error_is_a_value_error() -> None:
    # Act / Assert
    assert issubclass(ScopeSyntaxError, ValueError)


@pytest.mark.parametrize(
    ("grant", "text"),
    [
        pytest.param(TopicGrant(TopicPermission.READ_WRITE), "readwrite:*:*", id="all"),
        pytest.param(TopicGrant(TopicPermission.READ_ONLY, "c"), "readonly:c:*", id="cache"),
        pytest.param(TopicGrant(TopicPermission.WRITE_ONLY, "c", topic_name="t"), "writeonly:c:t", id="topic"),
        pytest.param(TopicGrant(TopicPermission.READ_WRITE, "c", topic_prefix="p"), "readwrite:c:p*", id="prefix"),
        pytest.param(TopicGrant(TopicPermission.READ_WRITE, "c", topic_prefix=""), "readwrite:c:*", id="empty-prefix"),
    ],
)
def test_describe_grant_writes_the_scope_syntax(grant: TopicGrant, text: str) -> None:
    # Act / Assert
    assert describe_grant(grant) == text


# Names the scope syntax can express: no ':' (separator) and no '*' (wildcard), not empty.
_scope_names = st.text(st.characters(codec="utf-8", exclude_characters=":*"), min_size=1)


@st.composite
def _scope_grants(draw: st.DrawFn) -> TopicGrant:
    role = draw(st.sampled_from(ROLES))
    cache = draw(st.none() | _scope_names)
    selector = draw(st.sampled_from(["all", "name", "prefix"]))
    if selector == "name":
        return TopicGrant(role, cache, topic_name=draw(_scope_names))
    if selector == "prefix":
        return TopicGrant(role, cache, topic_prefix=draw(_scope_names))
    return TopicGrant(role, cache)


@given(_scope_grants())
def test_describe_grant_round_trips_through_parse_scope(grant: TopicGrant) -> None:
    # Act / Assert
    assert parse_scope(describe_grant(grant)) == grant


# --- grant JSON ----------------------------------------------------------------------------------


def test_grants_to_json_uses_the_compact_shape() -> None:
    # Arrange
    grants = (TopicGrant(TopicPermission.READ_ONLY, "c", topic_prefix="p"), TopicGrant(TopicPermission.WRITE_ONLY))

    # Act / Assert
    assert grants_to_json(grants) == [
        {"r": "r", "c": "c", "t": None, "p": "p"},
        {"r": "w", "c": None, "t": None, "p": None},
    ]


_any_names = st.text(st.characters(codec="utf-8"))


@st.composite
def _json_grants(draw: st.DrawFn) -> TopicGrant:
    role = draw(st.sampled_from(ROLES))
    cache = draw(st.none() | _any_names)
    selector = draw(st.sampled_from(["all", "name", "prefix"]))
    if selector == "name":
        return TopicGrant(role, cache, topic_name=draw(_any_names))
    if selector == "prefix":
        return TopicGrant(role, cache, topic_prefix=draw(_any_names))
    return TopicGrant(role, cache)


@given(st.lists(_json_grants(), max_size=5).map(tuple))
def test_grants_json_round_trips(grants: tuple[TopicGrant, ...]) -> None:
    # Act / Assert
    assert grants_from_json(grants_to_json(grants)) == grants


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(None, id="null"),
        pytest.param({"r": "rw"}, id="object-not-list"),
        pytest.param("rw", id="string"),
        pytest.param([None], id="null-item"),
        pytest.param(["rw"], id="string-item"),
        pytest.param([[]], id="list-item"),
        pytest.param([{}], id="no-role"),
        pytest.param([{"r": "x"}], id="unknown-role"),
        pytest.param([{"r": "readwrite"}], id="long-role-name"),
        pytest.param([{"r": None}], id="null-role"),
        pytest.param([{"r": 1}], id="number-role"),
        pytest.param([{"r": ["rw"]}], id="list-role"),
        pytest.param([{"r": {"rw": 1}}], id="object-role"),
        pytest.param([{"r": "rw", "c": 1}], id="number-cache"),
        pytest.param([{"r": "rw", "t": ["a"]}], id="list-topic"),
        pytest.param([{"r": "rw", "p": True}], id="bool-prefix"),
        pytest.param([{"r": "rw", "t": "a", "p": "a"}], id="name-and-prefix"),
        pytest.param([{"r": "rw"}, {"r": "?"}], id="second-item-bad"),
    ],
)
def test_grants_from_json_refuses_malformed_shapes(data: Any) -> None:
    # Act / Assert
    with pytest.raises(ScopeSyntaxError):
        grants_from_json(data)


def test_grants_from_json_accepts_missing_selectors_as_all() -> None:
    # Act / Assert
    assert grants_from_json([{"r": "rw"}]) == (TopicGrant(TopicPermission.READ_WRITE),)


# --- grants_from_permissions (Momento's Permissions message) -------------------------------------


def _topic_permission(
    role: perm.TopicRole = perm.TopicReadWrite,
    *,
    cache: str | None = None,
    topic: str | None = None,
    prefix: str | None = None,
) -> perm.PermissionsType:
    topic_permissions = perm.PermissionsType.TopicPermissions(role=role)
    if cache is None:
        topic_permissions.all_caches.SetInParent()
    else:
        topic_permissions.cache_selector.cache_name = cache
    if topic is not None:
        topic_permissions.topic_selector.topic_name = topic
    elif prefix is not None:
        topic_permissions.topic_selector.topic_name_prefix = prefix
    else:
        topic_permissions.all_topics.SetInParent()
    return perm.PermissionsType(topic_permissions=topic_permissions)


def _explicit(*entries: perm.PermissionsType) -> perm.Permissions:
    return perm.Permissions(explicit=perm.ExplicitPermissions(permissions=list(entries)))


@pytest.mark.parametrize(
    ("wire_role", "role"),
    [
        pytest.param(perm.TopicReadWrite, TopicPermission.READ_WRITE, id="readwrite"),
        pytest.param(perm.TopicReadOnly, TopicPermission.READ_ONLY, id="readonly"),
        pytest.param(perm.TopicWriteOnly, TopicPermission.WRITE_ONLY, id="writeonly"),
    ],
)
def test_grants_from_permissions_maps_topic_roles(wire_role: perm.TopicRole, role: TopicPermission) -> None:
    # Act
    grants = grants_from_permissions(_explicit(_topic_permission(wire_role)))

    # Assert
    assert grants == (TopicGrant(role),)


@pytest.mark.parametrize(
    ("entry", "grant"),
    [
        pytest.param(_topic_permission(), TopicGrant(TopicPermission.READ_WRITE), id="all-caches-all-topics"),
        pytest.param(_topic_permission(cache="c"), TopicGrant(TopicPermission.READ_WRITE, "c"), id="one-cache"),
        pytest.param(
            _topic_permission(cache="c", topic="t"),
            TopicGrant(TopicPermission.READ_WRITE, "c", topic_name="t"),
            id="topic",
        ),
        pytest.param(
            _topic_permission(cache="c", prefix="p-"),
            TopicGrant(TopicPermission.READ_WRITE, "c", topic_prefix="p-"),
            id="prefix",
        ),
        pytest.param(
            _topic_permission(prefix="p"), TopicGrant(TopicPermission.READ_WRITE, topic_prefix="p"), id="prefix-all"
        ),
    ],
)
def test_grants_from_permissions_maps_selectors(entry: perm.PermissionsType, grant: TopicGrant) -> None:
    # Act / Assert
    assert grants_from_permissions(_explicit(entry)) == (grant,)


@pytest.mark.parametrize(
    "entry",
    [
        pytest.param(
            perm.PermissionsType(
                topic_permissions=perm.PermissionsType.TopicPermissions(
                    role=perm.TopicReadOnly, cache_selector={}, all_topics={}
                )
            ),
            id="empty-cache-name",
        ),
        pytest.param(
            perm.PermissionsType(
                topic_permissions=perm.PermissionsType.TopicPermissions(role=perm.TopicReadOnly, all_topics={})
            ),
            id="no-cache-selector",
        ),
        pytest.param(
            perm.PermissionsType(
                topic_permissions=perm.PermissionsType.TopicPermissions(role=perm.TopicReadOnly, all_caches={})
            ),
            id="no-topic-selector",
        ),
        pytest.param(
            perm.PermissionsType(
                topic_permissions=perm.PermissionsType.TopicPermissions(
                    role=perm.TopicReadOnly, all_caches={}, topic_selector={}
                )
            ),
            id="empty-topic-selector",
        ),
        pytest.param(
            perm.PermissionsType(
                topic_permissions=perm.PermissionsType.TopicPermissions(
                    role=perm.TopicReadOnly, all_caches={}, topic_selector={"topic_name_prefix": ""}
                )
            ),
            id="empty-prefix",
        ),
        pytest.param(_topic_permission(perm.TopicPermitNone, cache="b"), id="permit-none"),
        pytest.param(_topic_permission(cache="bad\nname"), id="bad-cache-name"),
    ],
)
def test_grants_from_permissions_refuses_incomplete_topic_permissions(entry: perm.PermissionsType) -> None:
    # An incomplete request is malformed: it must never widen into "every cache" or "every topic".
    with pytest.raises(InvalidArgument):
        grants_from_permissions(_explicit(entry))


def test_grants_from_permissions_keeps_order_and_ignores_cache_and_function_permissions() -> None:
    # Arrange
    cache_entry = perm.PermissionsType(
        cache_permissions=perm.PermissionsType.CachePermissions(role=perm.CacheReadWrite, all_caches={}, all_items={})
    )
    function_entry = perm.PermissionsType(
        function_permissions=perm.PermissionsType.FunctionPermissions(
            role=perm.FunctionInvoke, all_caches={}, all_functions={}
        )
    )
    permissions = _explicit(
        _topic_permission(perm.TopicReadOnly, cache="a"),
        cache_entry,
        function_entry,
        _topic_permission(perm.TopicWriteOnly, cache="c", topic="t"),
    )

    # Act
    grants = grants_from_permissions(permissions)

    # Assert
    assert grants == (
        TopicGrant(TopicPermission.READ_ONLY, "a"),
        TopicGrant(TopicPermission.WRITE_ONLY, "c", topic_name="t"),
    )


def test_grants_from_permissions_of_only_cache_permissions_is_empty() -> None:
    # Arrange
    cache_entry = perm.PermissionsType(
        cache_permissions=perm.PermissionsType.CachePermissions(role=perm.CacheReadOnly, all_caches={}, all_items={})
    )

    # Act / Assert
    assert grants_from_permissions(_explicit(cache_entry)) == ()


def test_grants_from_permissions_refuses_super_user() -> None:
    # Arrange
    permissions = perm.Permissions(super_user=perm.SuperUser)

    # Act / Assert
    with pytest.raises(InvalidArgument, match="super-user"):
        grants_from_permissions(permissions)


def test_grants_from_permissions_refuses_missing_permissions() -> None:
    # Act / Assert
    with pytest.raises(InvalidArgument, match="required"):
        grants_from_permissions(perm.Permissions())
