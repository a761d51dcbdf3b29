"""What a disposable token may do, as values: `TopicScope` (one permission) and `DisposableTokenScope` (several).

::

    scope = TopicScope.subscribe_only("orders", TopicNamePrefix("events-")) | TopicScope.publish_only(
        "orders", "commands"
    )

A `TopicScope` is a role (publish and subscribe, subscribe only, publish only) on one cache or `ALL_CACHES`,
and on one topic, `ALL_TOPICS` or the topics whose names start with a `TopicNamePrefix`. `|` combines scopes
into a `DisposableTokenScope`, which builds Momento's ``permission_messages.Permissions``: every topic
permission in it says its role, its caches and its topics explicitly, as servers require.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from momento_wire_types import permissionmessages_pb2 as perm

from tidings.client._validation import name_problem


class TopicRole(enum.Enum):
    """What a `TopicScope` allows on the topics it selects."""

    PUBLISH_SUBSCRIBE = "publish-subscribe"
    """Publish and subscribe (Momento's ``TopicReadWrite``)."""
    SUBSCRIBE_ONLY = "subscribe-only"
    """Subscribe (``TopicReadOnly``)."""
    PUBLISH_ONLY = "publish-only"
    """Publish (``TopicWriteOnly``)."""


class AllCaches(enum.Enum):
    """The type of `ALL_CACHES`."""

    ALL_CACHES = enum.auto()

    def __repr__(self) -> str:
        return self.name


class AllTopics(enum.Enum):
    """The type of `ALL_TOPICS`."""

    ALL_TOPICS = enum.auto()

    def __repr__(self) -> str:
        return self.name


ALL_CACHES: Final = AllCaches.ALL_CACHES
"""Selects every cache, in place of a cache name."""
ALL_TOPICS: Final = AllTopics.ALL_TOPICS
"""Selects every topic, in place of a topic name."""


@dataclass(frozen=True, slots=True)
class TopicNamePrefix:
    """Selects every topic whose name starts with ``prefix`` (not empty: select `ALL_TOPICS` instead)."""

    prefix: str

    def __post_init__(self) -> None:
        problem = name_problem("a topic name prefix", self.prefix)
        if problem is not None:
            raise ValueError(problem)


_ROLE_MESSAGES: Final = {
    TopicRole.PUBLISH_SUBSCRIBE: perm.TopicReadWrite,
    TopicRole.SUBSCRIBE_ONLY: perm.TopicReadOnly,
    TopicRole.PUBLISH_ONLY: perm.TopicWriteOnly,
}
_Permission = perm.PermissionsType


@dataclass(frozen=True, slots=True)
class TopicScope:
    """``role`` on ``topic`` (a name, `ALL_TOPICS` or a `TopicNamePrefix`) in ``cache`` (a name or `ALL_CACHES`).

    Build it with `publish_subscribe`, `subscribe_only` or `publish_only`; a bad name raises ValueError.
    """

    role: TopicRole
    cache: str | AllCaches
    topic: str | AllTopics | TopicNamePrefix = ALL_TOPICS

    def __post_init__(self) -> None:
        if not isinstance(self.role, TopicRole):
            raise ValueError(f"role must be a TopicRole, not {type(self.role).__name__}")
        if self.cache is not ALL_CACHES:
            problem = name_problem("cache", self.cache)
            if problem is not None:
                raise ValueError(f"{problem} (or ALL_CACHES)")
        if self.topic is not ALL_TOPICS and not isinstance(self.topic, TopicNamePrefix):
            problem = name_problem("topic", self.topic)
            if problem is not None:
                raise ValueError(f"{problem} (or ALL_TOPICS, or a TopicNamePrefix)")

    @classmethod
    def publish_subscribe(
        cls, cache: str | AllCaches, topic: str | AllTopics | TopicNamePrefix = ALL_TOPICS
    ) -> TopicScope:
        """Publish to and subscribe to ``topic`` in ``cache``."""
        return cls(TopicRole.PUBLISH_SUBSCRIBE, cache, topic)

    @classmethod
    def subscribe_only(
        cls, cache: str | AllCaches, topic: str | AllTopics | TopicNamePrefix = ALL_TOPICS
    ) -> TopicScope:
        """Subscribe to ``topic`` in ``cache``, but not publish."""
        return cls(TopicRole.SUBSCRIBE_ONLY, cache, topic)

    @classmethod
    def publish_only(cls, cache: str | AllCaches, topic: str | AllTopics | TopicNamePrefix = ALL_TOPICS) -> TopicScope:
        """Publish to ``topic`` in ``cache``, but not subscribe."""
        return cls(TopicRole.PUBLISH_ONLY, cache, topic)

    def __or__(self, other: TopicScope | DisposableTokenScope) -> DisposableTokenScope:
        if not isinstance(other, TopicScope | DisposableTokenScope):
            return NotImplemented
        return DisposableTokenScope((self,)) | other

    def to_permission(self) -> perm.PermissionsType:
        """This scope as one ``permission_messages.PermissionsType`` (a topic permission)."""
        topic = _Permission.TopicPermissions(role=_ROLE_MESSAGES[self.role])
        if self.cache is ALL_CACHES:
            topic.all_caches.SetInParent()
        else:
            topic.cache_selector.cache_name = self.cache
        match self.topic:
            case AllTopics.ALL_TOPICS:
                topic.all_topics.SetInParent()
            case TopicNamePrefix(prefix):
                topic.topic_selector.topic_name_prefix = prefix
            case str(name):
                topic.topic_selector.topic_name = name
        return _Permission(topic_permissions=topic)


@dataclass(frozen=True, slots=True)
class DisposableTokenScope:
    """Everything a disposable token may do: its `TopicScope` s, in order, without repeats.

    Usually built with ``|`` (``TopicScope.publish_only(...) | TopicScope.subscribe_only(...)``); iterating
    yields the topic scopes.
    """

    topic_scopes: tuple[TopicScope, ...] = ()

    def __post_init__(self) -> None:
        scopes = tuple(self.topic_scopes)
        for scope in scopes:
            if not isinstance(scope, TopicScope):
                raise ValueError(f"a DisposableTokenScope holds TopicScopes, not {type(scope).__name__}")
        object.__setattr__(self, "topic_scopes", tuple(dict.fromkeys(scopes)))

    def __or__(self, other: TopicScope | DisposableTokenScope) -> DisposableTokenScope:
        if not isinstance(other, TopicScope | DisposableTokenScope):
            return NotImplemented
        added = (other,) if isinstance(other, TopicScope) else other.topic_scopes
        return DisposableTokenScope(self.topic_scopes + added)

    def __iter__(self) -> Iterator[TopicScope]:
        return iter(self.topic_scopes)

    def __len__(self) -> int:
        return len(self.topic_scopes)

    def to_permissions(self) -> perm.Permissions:
        """The ``permission_messages.Permissions`` a token request carries: explicit topic permissions."""
        return perm.Permissions(
            explicit=perm.ExplicitPermissions(permissions=[scope.to_permission() for scope in self.topic_scopes])
        )
