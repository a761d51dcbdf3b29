"""Momento Local's fault-injection protocol: request metadata that makes calls fail, wait or end their stream.

Momento's SDKs test their retry and reconnect logic against Momento Local by sending, in each request's
metadata, what should go wrong (their test middlewares set it): ``return-error`` on the RPCs named in
``error-rpcs`` (the first ``error-count`` matching calls of a ``request-id``, or all of them), ``delay-ms``
on ``delay-rpcs`` (the first ``delay-count``), and ``stream-error`` after ``stream-error-message-limit``
messages on ``stream-error-rpcs``. tidings speaks it only with ``--fault-injection``; otherwise these headers
are ignored. The interceptor is not installed at all then, so it costs nothing when off.

A header that names no RPC list applies to every RPC (``stream-error`` to ``topic-subscribe``); counters are
per ``request-id`` (calls without one share a counter) and are forgotten `COUNTER_TTL` seconds after last use.
As in Momento Local, every message of a stream counts toward ``stream-error-message-limit``, heartbeats too:
Momento's own retry tests subscribe, publish nothing, and expect the error "after a couple of heartbeats".
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import grpc
import grpc.aio

from tidings.server.core import Writer
from tidings.server.grpc._context import CallContext, ContextWriter

logger = logging.getLogger("tidings.server.faults")

COUNTER_TTL: Final = 300.0

ERRORS: Final = {
    "invalid-argument": grpc.StatusCode.INVALID_ARGUMENT,
    "unknown": grpc.StatusCode.UNKNOWN,
    "already-exists": grpc.StatusCode.ALREADY_EXISTS,
    "not-found": grpc.StatusCode.NOT_FOUND,
    "internal": grpc.StatusCode.INTERNAL,
    "permission-denied": grpc.StatusCode.PERMISSION_DENIED,
    "unauthenticated": grpc.StatusCode.UNAUTHENTICATED,
    "cancelled": grpc.StatusCode.CANCELLED,
    "resource-exhausted": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "deadline-exceeded": grpc.StatusCode.DEADLINE_EXCEEDED,
    "unavailable": grpc.StatusCode.UNAVAILABLE,
    "failed-precondition": grpc.StatusCode.FAILED_PRECONDITION,
}

# The RPC names of the protocol ("topic-publish" as Momento's SDKs spell it), by gRPC method path.
RPCS: Final = {
    "/cache_client.pubsub.Pubsub/Publish": "topic-publish",
    "/cache_client.pubsub.Pubsub/Subscribe": "topic-subscribe",
    "/control_client.ScsControl/CreateCache": "create-cache",
    "/control_client.ScsControl/DeleteCache": "delete-cache",
    "/control_client.ScsControl/ListCaches": "list-caches",
    "/token.Token/GenerateDisposableToken": "generate-disposable-token",
    "/webhook.Webhook/PutWebhook": "put-webhook",
    "/webhook.Webhook/DeleteWebhook": "delete-webhook",
    "/webhook.Webhook/ListWebhooks": "list-webhooks",
    "/webhook.Webhook/GetWebhookSecret": "get-webhook-secret",
    "/webhook.Webhook/RotateWebhookSecret": "rotate-webhook-secret",
}
STREAMING_RPCS: Final = frozenset({"topic-subscribe"})
HEADERS: Final = (
    "request-id",
    "return-error",
    "error-rpcs",
    "error-count",
    "delay-rpcs",
    "delay-ms",
    "delay-count",
    "stream-error-rpcs",
    "stream-error",
    "stream-error-message-limit",
)


class BadFaultHeader(ValueError):
    """A fault header with a value the protocol does not know; the call is refused with INVALID_ARGUMENT."""


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """What one request's metadata asks to go wrong."""

    request_id: str = ""
    return_error: grpc.StatusCode | None = None
    error_rpcs: frozenset[str] | None = None  # None: every RPC
    error_count: int | None = None  # None: every matching call
    delay_ms: int | None = None
    delay_rpcs: frozenset[str] | None = None
    delay_count: int | None = None
    stream_error: grpc.StatusCode | None = None
    stream_error_rpcs: frozenset[str] | None = None
    stream_error_message_limit: int = 0

    @classmethod
    def from_metadata(cls, metadata: Iterable[tuple[str, str | bytes]]) -> FaultPlan | None:
        """The plan the fault headers in ``metadata`` describe; None when there are none."""
        headers = {key: value for key, value in metadata if key in HEADERS and isinstance(value, str)}
        if not headers:
            return None
        return cls(
            request_id=headers.get("request-id", ""),
            return_error=_error(headers, "return-error"),
            error_rpcs=_rpcs(headers, "error-rpcs"),
            error_count=_count(headers, "error-count"),
            delay_ms=_count(headers, "delay-ms"),
            delay_rpcs=_rpcs(headers, "delay-rpcs"),
            delay_count=_count(headers, "delay-count"),
            stream_error=_error(headers, "stream-error"),
            stream_error_rpcs=_rpcs(headers, "stream-error-rpcs"),
            stream_error_message_limit=_count(headers, "stream-error-message-limit") or 0,
        )

    def fails(self, rpc: str) -> bool:
        """Whether ``rpc`` is one this plan makes fail (before counting)."""
        return self.return_error is not None and (self.error_rpcs is None or rpc in self.error_rpcs)

    def delays(self, rpc: str) -> bool:
        """Whether ``rpc`` is one this plan delays (before counting)."""
        return bool(self.delay_ms) and (self.delay_rpcs is None or rpc in self.delay_rpcs)

    def breaks_stream(self, rpc: str) -> bool:
        """Whether ``rpc``'s stream is one this plan ends early."""
        rpcs = STREAMING_RPCS if self.stream_error_rpcs is None else self.stream_error_rpcs
        return self.stream_error is not None and rpc in rpcs and rpc in STREAMING_RPCS


def _error(headers: dict[str, str], name: str) -> grpc.StatusCode | None:
    value = headers.get(name)
    if value is None:
        return None
    code = ERRORS.get(value.strip())
    if code is None:
        raise BadFaultHeader(f"{name}: unknown error {value!r}; one of {', '.join(ERRORS)}")
    return code


def _rpcs(headers: dict[str, str], name: str) -> frozenset[str] | None:
    value = headers.get(name)
    if value is None:
        return None
    rpcs = frozenset(value.split())
    unknown = sorted(rpcs - set(RPCS.values()))
    if unknown:
        known = ", ".join(sorted(RPCS.values()))
        raise BadFaultHeader(f"{name}: unknown RPC {', '.join(map(repr, unknown))}; tidings serves {known}")
    return rpcs


def _count(headers: dict[str, str], name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    text = value.strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 9):
        raise BadFaultHeader(f"{name}: expected a non-negative integer, got {value!r}")
    return int(text)


class FaultCounters:
    """How many failures and delays each request id has used, forgotten after `COUNTER_TTL` idle seconds."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, ttl: float = COUNTER_TTL) -> None:
        self._clock = clock
        self._ttl = ttl
        self._used: dict[tuple[str, str], tuple[int, float]] = {}
        self._last_sweep = clock()

    def take(self, request_id: str, kind: str, limit: int | None) -> bool:
        """Count one matching call of ``kind``; True while the request id is within ``limit`` (None: always)."""
        now = self._clock()
        if now - self._last_sweep >= self._ttl / 4:
            self._sweep(now)
        key = (request_id, kind)
        used = self._used.get(key, (0, now))[0]
        if limit is not None and used >= limit:
            self._used[key] = (used, now)
            return False
        self._used[key] = (used + 1, now)
        return True

    def __len__(self) -> int:
        return len(self._used)

    def _sweep(self, now: float) -> None:
        self._last_sweep = now
        stale = [key for key, (_, last) in self._used.items() if now - last >= self._ttl]
        for key in stale:
            del self._used[key]


class _BreakingContext:
    """A servicer context whose stream ends with an injected error after ``limit`` messages (heartbeats count)."""

    def __init__(self, context: CallContext, code: grpc.StatusCode, limit: int) -> None:
        self._context = context
        self._code = code
        self._limit = limit
        self._sent = 0

    async def write(self, data: bytes) -> None:
        await self._context.write(data)
        self._sent += 1
        if self._sent >= self._limit:
            await self._context.abort(self._code, f"injected stream error after {self._sent} messages")

    def writer(self) -> Writer[bytes]:
        """Every message passes `write`, to be counted: none is written past it from the publish."""
        return ContextWriter(self)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


Behaviour = Callable[..., Awaitable[Any]]


class FaultInjectionInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Applies each call's `FaultPlan` before the servicer sees it (installed only with ``--fault-injection``)."""

    def __init__(self, counters: FaultCounters | None = None) -> None:
        self.counters = counters or FaultCounters()

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        rpc = RPCS.get(handler_call_details.method)
        if handler is None or rpc is None:
            return handler
        metadata: Sequence[tuple[str, str | bytes]] = handler_call_details.invocation_metadata or ()
        if not any(key in HEADERS for key, _ in metadata):
            return handler
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                with_faults(rpc, handler.unary_unary, self.counters),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                with_faults(rpc, handler.unary_stream, self.counters),  # type: ignore[arg-type]  # an async behaviour in grpc.aio
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler


def with_faults(rpc: str, behaviour: Behaviour, counters: FaultCounters) -> Behaviour:
    """``behaviour`` applying each call's `FaultPlan` first (both transports wrap their handlers with it)."""

    async def faulty(request: Any, context: CallContext) -> Any:
        try:
            plan = FaultPlan.from_metadata(context.invocation_metadata() or ())
        except BadFaultHeader as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        if plan is None:
            return await behaviour(request, context)
        if plan.delays(rpc) and counters.take(plan.request_id, "delay", plan.delay_count):
            await asyncio.sleep(plan.delay_ms / 1000)  # type: ignore[operator]
        if plan.fails(rpc) and counters.take(plan.request_id, "error", plan.error_count):
            assert plan.return_error is not None
            await context.abort(plan.return_error, f"injected error on {rpc} (request-id {plan.request_id!r})")
        if plan.breaks_stream(rpc):
            assert plan.stream_error is not None
            breaking = _BreakingContext(context, plan.stream_error, plan.stream_error_message_limit)
            return await behaviour(request, breaking)
        return await behaviour(request, context)

    return faulty
