"""The topics core: the protocol's semantics (README, docs/) in pure asyncio (no protobuf, HTTP or SQL)."""

from tidings.server.core._admission import require_super_user
from tidings.server.core._auth import ANONYMOUS, Principal, TopicGrant, TopicPermission
from tidings.server.core._cursor import READ_BATCH, TopicCursor
from tidings.server.core._delivery import Encoder, Writer
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
from tidings.server.core._log import Defer, RetentionBudget, TopicLog, after_ready
from tidings.server.core._names import MAX_NAME_BYTES, validate_name
from tidings.server.core._pages import PageClock
from tidings.server.core._ports import Engine, Store, TopicListener
from tidings.server.core._position import Position, resume_position
from tidings.server.core._service import TopicsService
from tidings.server.core._stats import LATENCY_BUCKETS, EngineStats, EngineStatus, Histogram, TransportStats

__all__ = [
    "ANONYMOUS",
    "HEARTBEAT",
    "LATENCY_BUCKETS",
    "MAX_NAME_BYTES",
    "READ_BATCH",
    "CacheAlreadyExists",
    "CacheNotFound",
    "Defer",
    "Discontinuity",
    "Encoder",
    "Engine",
    "EngineStats",
    "EngineStatus",
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
    "Position",
    "Principal",
    "RetentionBudget",
    "Store",
    "TokenBucket",
    "TopicCursor",
    "TopicGrant",
    "TopicListener",
    "TopicLog",
    "TopicPermission",
    "TopicsError",
    "TopicsService",
    "TransportStats",
    "Unauthenticated",
    "Unavailable",
    "WebhookNotFound",
    "Writer",
    "after_ready",
    "require_super_user",
    "resume_position",
    "validate_name",
]
