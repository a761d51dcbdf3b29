"""Credentials from gRPC metadata, and Momento's ``Permissions`` message as core grants."""

from __future__ import annotations

from typing import Final

from momento_wire_types import permissionmessages_pb2 as perm

from tidings.server.auth import credential_from_header
from tidings.server.core import InvalidArgument, TopicGrant, TopicPermission, validate_name
from tidings.server.grpc._context import CallContext

_TOPIC_ROLES: Final = {
    perm.TopicReadWrite: TopicPermission.READ_WRITE,
    perm.TopicReadOnly: TopicPermission.READ_ONLY,
    perm.TopicWriteOnly: TopicPermission.WRITE_ONLY,
}


def credential_of(context: CallContext) -> str | None:
    """The token in the ``authorization`` metadata, raw or ``Bearer <token>`` as over HTTP; None means anonymous."""
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            return credential_from_header(value) if isinstance(value, str) else None
    return None


def grants_from_permissions(permissions: perm.Permissions) -> tuple[TopicGrant, ...]:
    """Topic grants from a disposable token request's permissions.

    Cache-item and function permissions grant nothing on topics and are ignored; super-user is refused
    (a disposable token is always restricted), and so is a topic permission that does not say, explicitly,
    its role, which caches and which topics: an incomplete request never widens into "everything".
    """
    kind = permissions.WhichOneof("kind")
    if kind == "super_user":
        raise InvalidArgument("a disposable token cannot be super-user")
    if kind != "explicit":
        raise InvalidArgument("permissions are required")
    grants: list[TopicGrant] = []
    for entry in permissions.explicit.permissions:
        if entry.WhichOneof("kind") == "topic_permissions":
            grants.append(_topic_grant(entry.topic_permissions))
    return tuple(grants)


def _topic_grant(topic: perm.PermissionsType.TopicPermissions) -> TopicGrant:
    role = _TOPIC_ROLES.get(topic.role)
    if role is None:
        raise InvalidArgument("a topic permission needs a role: read-write, read-only or write-only")
    match topic.WhichOneof("cache"):
        case "all_caches":
            cache_name = None
        case "cache_selector":
            cache_name = validate_name("cache_name", topic.cache_selector.cache_name)
        case _:
            raise InvalidArgument("a topic permission must select all caches or one cache")
    match topic.WhichOneof("topic"), topic.topic_selector.WhichOneof("kind"):
        case "all_topics", _:
            return TopicGrant(role, cache_name)
        case "topic_selector", "topic_name":
            return TopicGrant(role, cache_name, topic_name=validate_name("topic_name", topic.topic_selector.topic_name))
        case "topic_selector", "topic_name_prefix":
            prefix = topic.topic_selector.topic_name_prefix
            if not prefix:
                raise InvalidArgument("topic_name_prefix must not be empty (select all topics instead)")
            return TopicGrant(role, cache_name, topic_prefix=prefix)
        case _:
            raise InvalidArgument("a topic permission must select all topics, one topic or a topic name prefix")
