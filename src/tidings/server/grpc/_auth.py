"""Credentials from gRPC metadata, and Momento's ``Permissions`` message as core grants."""

from __future__ import annotations

from typing import Any, Final

import grpc.aio
from momento_wire_types import permissionmessages_pb2 as perm

from tidings.server.core import InvalidArgument, TopicGrant, TopicRole

_TOPIC_ROLES: Final = {
    perm.TopicReadWrite: TopicRole.READ_WRITE,
    perm.TopicReadOnly: TopicRole.READ_ONLY,
    perm.TopicWriteOnly: TopicRole.WRITE_ONLY,
}


def credential_of(context: grpc.aio.ServicerContext[Any, Any]) -> str | None:
    """The ``authorization`` metadata value (None or empty means anonymous)."""
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            return value if isinstance(value, str) else None
    return None


def grants_from_permissions(permissions: perm.Permissions) -> tuple[TopicGrant, ...]:
    """Topic grants from a disposable token request's permissions.

    Cache-item and function permissions grant nothing on topics and are ignored; super-user is refused
    (a disposable token is always restricted).
    """
    kind = permissions.WhichOneof("kind")
    if kind == "super_user":
        raise InvalidArgument("a disposable token cannot be super-user")
    if kind != "explicit":
        raise InvalidArgument("permissions are required")
    grants: list[TopicGrant] = []
    for entry in permissions.explicit.permissions:
        if entry.WhichOneof("kind") != "topic_permissions":
            continue
        topic = entry.topic_permissions
        role = _TOPIC_ROLES.get(topic.role)
        if role is None:
            continue
        cache_name = topic.cache_selector.cache_name if topic.WhichOneof("cache") == "cache_selector" else None
        if topic.WhichOneof("topic") == "topic_selector":
            selector = topic.topic_selector
            if selector.WhichOneof("kind") == "topic_name_prefix":
                grants.append(TopicGrant(role, cache_name, topic_prefix=selector.topic_name_prefix))
            else:
                grants.append(TopicGrant(role, cache_name, topic_name=selector.topic_name))
        else:
            grants.append(TopicGrant(role, cache_name))
    return tuple(grants)
