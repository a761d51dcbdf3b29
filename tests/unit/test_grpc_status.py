"""The gRPC transport's one error mapping: domain errors to statuses, unexpected faults to INTERNAL."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from tidings.server.core import (
    CacheNotFound,
    Limit,
    LimitExceeded,
    OutcomeUnknown,
    TopicsError,
    TransportStats,
    Unavailable,
)
from tidings.server.grpc._status import INTERNAL_MESSAGE, guarded


class _Aborted(Exception):
    pass


class _Context:
    """Records the abort a handler makes, as grpc.aio's context would end the call."""

    def __init__(self) -> None:
        self.aborted: tuple[grpc.StatusCode, str, Any] | None = None

    async def abort(self, code: grpc.StatusCode, details: str, trailing_metadata: Any = ()) -> None:
        self.aborted = (code, details, tuple(trailing_metadata))
        raise _Aborted


class _Servicer:
    def __init__(self, failure: Exception) -> None:
        self.stats = TransportStats()
        self.failure = failure

    @guarded
    async def handle(self, data: bytes, context: Any) -> bytes:
        raise self.failure


@pytest.mark.parametrize(
    ("failure", "code", "details", "metadata"),
    [
        (CacheNotFound("c"), grpc.StatusCode.NOT_FOUND, "cache not found: 'c'", ()),
        (
            LimitExceeded(Limit.OPERATIONS_RATE, "slow down"),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "slow down",
            (("err", "operations_rate_limit_exceeded"),),
        ),
        (Unavailable("not sent"), grpc.StatusCode.UNAVAILABLE, "not sent", ()),
        (OutcomeUnknown("maybe applied"), grpc.StatusCode.DEADLINE_EXCEEDED, "maybe applied", ()),
        (TopicsError("odd"), grpc.StatusCode.INTERNAL, "odd", ()),
        (RuntimeError("secret internals at 0xdeadbeef"), grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE, ()),
    ],
    ids=[
        "domain-error",
        "limit-with-err",
        "unavailable",
        "outcome-unknown",
        "unmapped-domain-error",
        "unexpected-fault",
    ],
)
async def test_guarded_maps_failures_to_statuses_and_counts_them(
    failure: Exception, code: grpc.StatusCode, details: str, metadata: tuple[Any, ...]
) -> None:
    servicer = _Servicer(failure)
    context = _Context()

    with pytest.raises(_Aborted):
        await servicer.handle(b"", context)

    assert context.aborted == (code, details, metadata)
    assert servicer.stats.errors[code.name] == 1
