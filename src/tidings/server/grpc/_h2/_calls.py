"""`H2Calls`: the gRPC calls of one HTTP/2 connection, from their HEADERS to their status.

Before a call runs, its HEADERS are checked (method, route, token) and its request must arrive whole within the
request timeout (`expire_requests`: the server's reaper enforces the deadlines kept here). What the requests still
arriving hold is bounded (`_intake.RequestIntake`, ``_limits``), and received DATA is acknowledged when its
request is complete (or dropped), so what a client may send ahead is its connection's request budget. A whole
request runs its servicer as a task, with its `H2Call` as the context; `end_call` sends its status.

The layer between the connection's output (`_output.H2Output`, its base) and the asyncio protocol that feeds it
``h2``'s events (`_connection.H2Connection`, built on it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, Protocol

import grpc
import h2.errors
import h2.events
import h2.exceptions

from tidings.server.connections import Notices
from tidings.server.grpc._context import CallAborted, Metadata
from tidings.server.grpc._framing import REQUEST_TOO_LARGE, unary_body_refusal
from tidings.server.grpc._h2._call import H2Call
from tidings.server.grpc._h2._head import RequestHead
from tidings.server.grpc._h2._intake import RequestIntake
from tidings.server.grpc._h2._limits import (
    MAX_HEADER_LIST_SIZE,
    PENDING_HEADER_BUDGET,
    STREAM_COST,
    HeaderRate,
)
from tidings.server.grpc._h2._output import H2Output
from tidings.server.grpc._h2._wire import (
    OK_TRAILER_BLOCK,
    OK_TRAILERS,
    PREFIX_SIZE,
    RESPONSE_HEADERS,
    parse_timeout,
    status_headers,
)
from tidings.server.grpc._routes import CredentialCheck, Route, peer_name

if TYPE_CHECKING:
    from tidings.server.grpc._h2._state import StateMachine

logger = logging.getLogger("tidings.server.grpc.h2")


_OK: Final = grpc.StatusCode.OK
_REFUSED_STREAM: Final = h2.errors.ErrorCodes.REFUSED_STREAM
# Requests past their deadline answered per loop turn (`H2Calls.expire_requests`).
EXPIRE_BATCH: Final = 256


class CallOptions(Protocol):
    """What a connection's calls read of the server's `_connection.ConnectionOptions` (a protocol: that class
    names the connection class built on this one)."""

    routes: dict[str, Route]
    max_message_length: int
    tasks: set[asyncio.Task[None]]  # every call in progress, for the server's shutdown
    credential_check: CredentialCheck | None
    notices: Notices

    @property
    def header_rate(self) -> Callable[[], HeaderRate]:
        """Makes each connection's limit on header bytes decoded for nothing."""
        ...

    @property
    def request_budget(self) -> int:
        """Bytes of unfinished requests one connection may have the server hold."""
        ...

    @property
    def stream_window(self) -> int:
        """Each stream's receive window."""
        ...


class H2Calls(H2Output):
    """The calls of one connection: requests admitted at their HEADERS, their bodies taken in, their servicers
    run, their statuses sent."""

    def __init__(self, options: CallOptions, state_machine: StateMachine) -> None:
        budget = options.request_budget
        super().__init__(state_machine, budget, options.stream_window)
        self._options = options
        self._address: str | None = None  # the peer's address, once the connection has counted it
        self._calls: dict[int, H2Call] = {}
        # Requests still arriving, and what they may hold.
        self._intake = RequestIntake(budget, PENDING_HEADER_BUDGET, options.header_rate())
        self._going_away = False
        self.last_call_at = self._loop.time()

    # Requests

    def _open_call(self, stream_id: int, head: RequestHead) -> None:
        """A request's HEADERS arrived (decoded by h2, or a block `_head.HeadCache` knew): answer it at once, or
        take it in while its body arrives."""
        if self._going_away:
            self._h2.reset_stream(stream_id, _REFUSED_STREAM)
            return
        size = head.size
        if head.method != b"POST":
            self._respond_http(stream_id, b"405", size)
            return
        if not head.content_type.startswith(b"application/grpc"):
            self._respond_http(stream_id, b"415", size)
            return
        call = self._calls[stream_id] = H2Call(self, stream_id, head)
        refusal = self._refusal(call, head)
        if refusal is not None:
            # The client's address and the reason, never its token (as `guarded` logs what the servicers refuse).
            logger.debug("%s from %s answered %s: %s", call.path, call.peer(), refusal[0].name, refusal[1])
            self._decoded_for_nothing(size)
            self.end_call(call, *refusal)
            return
        if not self._intake.admit(call, size + STREAM_COST, call.received_at):
            self._decoded_for_nothing(size)
            self._refuse(call)

    def _refusal(self, call: H2Call, head: RequestHead) -> tuple[grpc.StatusCode, str, Metadata] | None:
        """Why ``call`` is answered at its HEADERS (status, message, trailing metadata), or None: it goes on,
        its time of arrival and deadline set."""
        size, timeout, authorization = head.size, head.timeout, head.authorization
        if size > MAX_HEADER_LIST_SIZE:
            return (
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"request headers of {size} bytes exceed the limit of {MAX_HEADER_LIST_SIZE}",
                REQUEST_TOO_LARGE,
            )
        if head.te != b"trailers":
            return grpc.StatusCode.INTERNAL, "te: trailers is required", ()
        if call.path not in self._options.routes:
            return grpc.StatusCode.UNIMPLEMENTED, f"Method not found: {call.path}", ()
        now = call.received_at = self._loop.time()
        if timeout:
            seconds = parse_timeout(timeout)
            if seconds is None:
                return grpc.StatusCode.INTERNAL, f"malformed grpc-timeout {timeout!r}", ()
            call.deadline = now + seconds
        check = self._options.credential_check
        if check is not None:  # before a byte of the body is held
            unauthenticated = check(call.path, None if authorization is None else authorization.decode("latin-1"))
            if unauthenticated is not None:
                return grpc.StatusCode.UNAUTHENTICATED, unauthenticated, ()
        return None

    def _on_data(self, stream_id: int, data: bytes, size: int) -> None:
        """A DATA frame of ``size`` flow-controlled bytes (padding included) arrived on ``stream_id``."""
        call = self._intake.get(stream_id)
        if call is None:  # the request was answered, refused or reset: its bytes are dropped
            self._give_back(size)
            return
        self._take_data(call, data, size)

    def _take_data(self, call: H2Call, data: bytes, size: int) -> None:
        """Add a DATA frame to the request of ``call`` (still arriving); past the largest, answer it."""
        self._intake.receive(call, data, size)
        if len(call.body) > self._options.max_message_length + PREFIX_SIZE:
            limit = self._options.max_message_length
            # Our own limit answer (RESOURCE_EXHAUSTED + err), which grpcio cannot give for its receive limit.
            self.end_call(
                call,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"request larger than {limit} bytes",
                REQUEST_TOO_LARGE,
            )

    def _on_request_end(self, stream_id: int) -> None:
        call = self._intake.get(stream_id)
        if call is None:
            return
        body = call.body
        call.body = bytearray()
        self._release(call)
        refusal = unary_body_refusal(body)
        if refusal is not None:
            self.end_call(call, *refusal)
            return
        route = self._options.routes[call.path]
        self.last_call_at = self._loop.time()
        task = call.task = self._loop.create_task(self._run(call, route, bytes(body[PREFIX_SIZE:])))
        tasks = self._options.tasks
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def _on_reset(self, stream_id: int) -> None:
        call = self._calls.pop(stream_id, None)
        if call is not None:
            call.ended = True
            if call.task is not None:
                call.task.cancel()
            elif self._intake.get(stream_id) is not None:  # reset before its request was whole
                self._release(call)
                self._decoded_for_nothing(call.cost - STREAM_COST)

    def _on_window(self, stream_id: int) -> None:
        calls = list(self._blocked) if stream_id == 0 else (self._calls.get(stream_id),)
        for call in calls:
            if call is not None and call.window_waiter is not None and not call.window_waiter.done():
                call.window_waiter.set_result(None)

    def _release(self, call: H2Call) -> None:
        """Forget ``call`` as a request still arriving: give its share of the budget back, and its bytes to
        the client's flow-control window."""
        self._give_back(self._intake.release(call))

    def _refuse(self, call: H2Call) -> None:
        """Refuse ``call`` at its HEADERS, its connection's unfinished requests holding their header budget
        (RST_STREAM REFUSED_STREAM: nothing was processed)."""
        call.ended = True
        self._calls.pop(call.stream_id, None)
        with contextlib.suppress(h2.exceptions.StreamClosedError):
            self._h2.reset_stream(call.stream_id, _REFUSED_STREAM)
        self._schedule_flush()
        self._options.notices.seen(
            "refused a stream of a gRPC connection from %s: its unfinished requests hold %d bytes of headers",
            self._address,
            self._intake.header_budget,
        )

    def _respond_http(self, stream_id: int, status: bytes, header_size: int) -> None:
        """Answer a request that is not gRPC with an HTTP ``status`` alone."""
        self._decoded_for_nothing(header_size)
        self._h2.send_headers(stream_id, ((b":status", status),), end_stream=True)

    def _decoded_for_nothing(self, size: int) -> None:
        """Charge ``size`` decoded header bytes that serve no call to the connection's `HeaderRate`; past it,
        GOAWAY ENHANCE_YOUR_CALM and close (nothing more it sent is decoded)."""
        if self._intake.decoded_for_nothing(size) or self._calmed:
            return
        self._options.notices.seen(
            "closed a gRPC connection from %s: header bytes of requests it was not served over the rate "
            "(GOAWAY ENHANCE_YOUR_CALM)",
            self._address,
        )
        self._going_away = True
        self._calm_down()

    # Calls

    async def _run(self, call: H2Call, route: Route, request: bytes) -> None:
        try:
            if call.deadline is None:
                response = await route.behaviour(request, call)
            else:
                deadline = asyncio.timeout_at(call.deadline)
                try:
                    async with deadline:
                        response = await route.behaviour(request, call)
                except TimeoutError:
                    if not deadline.expired():  # the servicer's own TimeoutError, not the deadline
                        raise
                    self.end_call(call, grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
                    return
            if not route.streaming:
                await call.write(response)
            self.end_call(call, _OK, "")
        except CallAborted:
            pass
        except Exception:
            logger.exception("unexpected fault in %s", call.path)
            self.end_call(call, grpc.StatusCode.UNKNOWN, "unexpected server error")

    def end_call(self, call: H2Call, code: grpc.StatusCode, details: str, trailing_metadata: Metadata = ()) -> None:
        """Send ``call``'s status (Trailers-Only when no response headers went out) and forget the call."""
        if call.ended:
            return
        call.ended = True
        if self._calls.get(call.stream_id) is call:
            del self._calls[call.stream_id]
        if call.task is None:
            self._release(call)  # answered while its request was still arriving
        else:
            self.last_call_at = self._loop.time()
        if self._transport is None:
            return
        if code is _OK and call.h2_stream is not None and not trailing_metadata:
            with contextlib.suppress(h2.exceptions.ProtocolError):  # the stream was reset meanwhile
                self._send_header_block(call.h2_stream, OK_TRAILERS, OK_TRAILER_BLOCK, end_stream=True)
            self._schedule_flush()
            return
        trailers = status_headers(code, details, trailing_metadata)
        if not call.headers_sent:
            call.headers_sent = True
            trailers = [*RESPONSE_HEADERS, *trailers]
        connection = self._h2
        try:
            connection.send_headers(call.stream_id, trailers, end_stream=True)
            if call.task is None and code is not _OK:
                # Ended before the request was read: the client may still be sending; stop it.
                connection.reset_stream(call.stream_id, h2.errors.ErrorCodes.NO_ERROR)
        except h2.exceptions.StreamClosedError:
            pass
        self._schedule_flush()

    def peer(self) -> str:
        """The client's address as grpcio writes it (``ipv4:127.0.0.1:5000``, ``ipv6:[::1]:5000``), for the log."""
        transport = self._transport
        return peer_name(transport.get_extra_info("peername") if transport is not None else None)

    # The server's reaper and shutdown

    @property
    def idle_since(self) -> float | None:
        """Since when no call has run on this connection (None while one does): requests still arriving are not
        calls, and neither are PINGs."""
        return None if len(self._calls) > len(self._intake) else self.last_call_at

    def expire_requests(self, received_before: float) -> None:
        """End the calls whose request began arriving (HEADERS) before ``received_before`` and is not whole yet:
        DEADLINE_EXCEEDED, and the client told to stop sending it.

        At most `EXPIRE_BATCH` per loop turn, the rest in the next: a connection that left thousands of bodies
        unfinished would otherwise hold the loop for their answers at once (measured: a publish on another
        connection waited 0.7 s while 12,600 were answered in one go)."""
        expired = self._intake.expired(received_before, EXPIRE_BATCH)
        for call in expired:
            self.end_call(call, grpc.StatusCode.DEADLINE_EXCEEDED, "the request did not arrive in time")
            self._decoded_for_nothing(call.cost - STREAM_COST)
            self._options.notices.seen(
                "ended a call from %s whose request did not arrive within --request-timeout", self._address
            )
        if len(expired) == EXPIRE_BATCH:
            self._loop.call_soon(self.expire_requests, received_before)

    def end_calls(self, code: grpc.StatusCode, details: str) -> None:
        """End every open call with ``code`` and cancel its task (shutdown past its grace)."""
        for call in list(self._calls.values()):
            self.end_call(call, code, details)
            if call.task is not None:
                call.task.cancel()
