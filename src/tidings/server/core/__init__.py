"""The topics core: the protocol's semantics (README, docs/) in pure asyncio (no protobuf, HTTP or SQL)."""

from tidings.server.core._auth import ANONYMOUS, Principal, TopicGrant, TopicRole
from tidings.server.core._errors import (
    CacheAlreadyExists,
    CacheNotFound,
    InvalidArgument,
    Limit,
    LimitExceeded,
    OutcomeUnknown,
    PermissionDenied,
    TopicsError,
    Unauthenticated,
    Unavailable,
    WebhookNotFound,
)
from tidings.server.core._events import HEARTBEAT, Discontinuity, Event, Heartbeat, Message
from tidings.server.core._failures import FailureLog
from tidings.server.core._limits import Limits, TokenBucket
from tidings.server.core._names import MAX_NAME_BYTES, validate_name
from tidings.server.core._pages import PageClock
from tidings.server.core._ports import Engine, EngineTopic, RetentionUsage, Store, TopicListener, TopicLog
from tidings.server.core._service import TopicsService, resume_position
from tidings.server.core._stats import LATENCY_BUCKETS, EngineStats, Histogram, TransportStats
from tidings.server.core._topics import READ_BATCH, Sink, Subscription
from tidings.server.core._webhooks import (
    Webhook,
    WebhookListener,
    WebhookRegistry,
    WebhookStore,
    new_secret,
    validate_url,
)

__all__ = [
    "ANONYMOUS",
    "HEARTBEAT",
    "LATENCY_BUCKETS",
    "MAX_NAME_BYTES",
    "READ_BATCH",
    "CacheAlreadyExists",
    "CacheNotFound",
    "Discontinuity",
    "Engine",
    "EngineStats",
    "EngineTopic",
    "Event",
    "FailureLog",
    "Heartbeat",
    "Histogram",
    "InvalidArgument",
    "Limit",
    "LimitExceeded",
    "Limits",
    "Message",
    "OutcomeUnknown",
    "PageClock",
    "PermissionDenied",
    "Principal",
    "RetentionUsage",
    "Sink",
    "Store",
    "Subscription",
    "TokenBucket",
    "TopicGrant",
    "TopicListener",
    "TopicLog",
    "TopicRole",
    "TopicsError",
    "TopicsService",
    "TransportStats",
    "Unauthenticated",
    "Unavailable",
    "Webhook",
    "WebhookListener",
    "WebhookNotFound",
    "WebhookRegistry",
    "WebhookStore",
    "new_secret",
    "resume_position",
    "validate_name",
    "validate_url",
]
