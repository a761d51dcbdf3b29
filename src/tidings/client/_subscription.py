"""`SubscriptionAsync`: one topic subscription that survives broken streams.

It reads one Subscribe stream at a time. When a stream breaks with a retryable failure it waits (exponential
backoff with full jitter) and opens a new one at its resume point: the sequence number after the last item
it delivered, in that item's page (README *Subscriptions, resume and discontinuities*). Items that are not
after the last delivered one in the same page are dropped, so a resume never yields a duplicate or an
out-of-order item.

A subscription moves through three states and ends with exactly one `TopicSubscriptionItem.Error`::

    OPEN ── unsubscribe(), client closed, or a failure resubscribing cannot fix ──> ENDING
    ENDING ── the final Error was yielded ──> DONE (the iterator is exhausted)
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Protocol

import grpc
import grpc.aio

from tidings.client._callbacks import Callbacks
from tidings.client._errors import ErrorCode, error_from
from tidings.client._items import HEARTBEAT, SubscriptionItem, TopicSubscriptionItem
from tidings.client._resubscribe import BACKOFF_CAP, RETRYABLE, START_RETRYABLE, full_jitter

logger = logging.getLogger("tidings.client")

_Text = TopicSubscriptionItem.Text
_Binary = TopicSubscriptionItem.Binary
_Discontinuity = TopicSubscriptionItem.Discontinuity
_EOF: Final[object] = grpc.aio.EOF  # type: ignore[attr-defined]  # missing from grpc-stubs


class StreamCall(Protocol):
    """The part of a grpc.aio unary-stream call a subscription uses."""

    async def read(self) -> Any: ...

    def cancel(self) -> bool: ...


OpenStream = Callable[[int, int], StreamCall]
"""Opens a Subscribe stream at (resume_at_topic_sequence_number, sequence_page)."""


def _no_more_streams(resume_at: int, page: int) -> StreamCall:
    raise RuntimeError("the subscription ended")


class _State(enum.Enum):
    OPEN = "open"
    ENDING = "ending"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class SubscriptionStatistics:
    """Counters of a subscription's resilience work."""

    resubscriptions: int
    """Streams opened after the first one (each a resume after a retryable failure)."""
    dropped_duplicates: int
    """Items dropped because they were not after the last delivered one (seen again after a resume)."""


class SubscriptionAsync:
    """A subscription of `TopicClientAsync`: an async iterator of `TopicSubscriptionItem` responses.

    ``async for item in subscription`` yields ``Text`` and ``Binary`` items (and ``Heartbeat`` /
    ``Discontinuity`` when asked for) and ends after one ``Error``. `unsubscribe` ends it at once, from any
    task or thread; ``async with subscription:`` unsubscribes on exit. With callbacks, a task owned by the
    subscription delivers the items instead, and iterating is an error.
    """

    def __init__(
        self,
        open_stream: OpenStream,
        cache_name: str,
        topic_name: str,
        *,
        resume_at_sequence_number: int,
        resume_at_sequence_page: int,
        include_heartbeats: bool,
        include_discontinuities: bool,
        on_closed: Callable[[SubscriptionAsync], None] | None = None,
        backoff: Callable[[int], float] = full_jitter,
    ) -> None:
        self._open_stream = open_stream
        self._cache_name = cache_name
        self._topic_name = topic_name
        self._next_sequence_number = resume_at_sequence_number
        self._sequence_page = resume_at_sequence_page
        self._include_heartbeats = include_heartbeats
        self._include_discontinuities = include_discontinuities
        self._on_closed = on_closed
        self._backoff = backoff
        self._loop = asyncio.get_running_loop()
        self._state = _State.OPEN
        self._call: StreamCall | None = None
        self._opened_at = 0.0
        self._pending: SubscriptionItem | None = None
        self._final: TopicSubscriptionItem.Error | None = None
        self._wakeup = asyncio.Event()
        self._attempts = 0
        self._resubscriptions = 0
        self._dropped_duplicates = 0
        self._delivery: asyncio.Task[None] | None = None

    # -- what users see -------------------------------------------------------------------------------

    @property
    def cache_name(self) -> str:
        """The cache of the topic."""
        return self._cache_name

    @property
    def topic_name(self) -> str:
        """The topic subscribed to."""
        return self._topic_name

    @property
    def resume_at_sequence_number(self) -> int:
        """The sequence number after the last item delivered (0 before the first one in a live subscription).

        Pass it, with `sequence_page`, to a later ``subscribe`` to continue where this one stopped.
        """
        return self._next_sequence_number

    @property
    def sequence_page(self) -> int:
        """The page of the last item or discontinuity delivered (0 while unknown)."""
        return self._sequence_page

    @property
    def is_closed(self) -> bool:
        """Whether the subscription ended (unsubscribed, client closed, or failed); it yields its Error last."""
        return self._state is not _State.OPEN

    def statistics(self) -> SubscriptionStatistics:
        """How often this subscription resubscribed and dropped a duplicate."""
        return SubscriptionStatistics(self._resubscriptions, self._dropped_duplicates)

    def unsubscribe(self) -> None:
        """End the subscription now: the stream is cancelled, and the iterator yields an ``Error`` with
        `ErrorCode.CANCELLED` and stops. Safe from any task or thread, and more than once."""
        if self._state is not _State.OPEN:
            return
        self._final = TopicSubscriptionItem.Error(ErrorCode.CANCELLED, "unsubscribed")
        self._state = _State.ENDING
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._release()
        else:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing is left to release
                self._loop.call_soon_threadsafe(self._release)

    def __aiter__(self) -> SubscriptionAsync:
        if self._delivery is not None:
            raise RuntimeError("this subscription delivers to its callbacks; it cannot also be iterated")
        return self

    async def __anext__(self) -> SubscriptionItem:
        pending = self._pending
        if pending is not None:
            self._pending = None
            if self._state is _State.OPEN:
                return pending
        while True:
            if self._state is not _State.OPEN:
                return self._finish()
            call = self._call
            if call is None:
                await self._resubscribe()
                continue
            try:
                message = await call.read()
            except asyncio.CancelledError:
                if self._state is _State.OPEN:
                    # The task reading was cancelled (not the subscription); grpc cancelled the stream
                    # with it, so the next read resumes on a new one.
                    self._call = None
                    raise
                continue
            except grpc.aio.AioRpcError as error:
                self._stream_failed(error)
                continue
            if message is _EOF:
                self._call = None  # a stream must not end; treat it as a lost one
                continue
            if self._state is not _State.OPEN:
                continue  # unsubscribed from another thread while reading
            kind = message.WhichOneof("kind")
            if kind == "item":
                delivered = self._item(message.item)
                if delivered is not None:
                    return delivered
            elif kind == "heartbeat":
                if self._include_heartbeats:
                    return HEARTBEAT
            elif kind == "discontinuity":
                discontinuity = message.discontinuity
                self._next_sequence_number = discontinuity.new_topic_sequence + 1
                self._sequence_page = discontinuity.new_sequence_page
                if self._include_discontinuities:
                    return _Discontinuity(
                        discontinuity.last_topic_sequence,
                        discontinuity.new_topic_sequence,
                        discontinuity.new_sequence_page,
                    )

    def _item(self, item: Any) -> SubscriptionItem | None:
        """What to deliver for a received item: the item (after a discontinuity the server owed, when one is
        asked for), or None for a duplicate, which is dropped."""
        sequence_number = item.topic_sequence_number
        page = item.sequence_page
        expected = self._next_sequence_number
        if page == self._sequence_page:
            if sequence_number < expected:
                self._dropped_duplicates += 1
                return None
            skipped = sequence_number > expected > 0
        else:
            skipped = self._sequence_page != 0
        self._next_sequence_number = sequence_number + 1
        self._sequence_page = page
        value = item.value
        token_id = item.publisher_id or None
        if value.WhichOneof("kind") == "text":
            delivered: SubscriptionItem = _Text(value.text, sequence_number, page, token_id)
        else:
            delivered = _Binary(value.binary, sequence_number, page, token_id)
        if skipped and self._include_discontinuities:
            # The server owes a discontinuity before a gap or a new page; report one if it did not.
            self._pending = delivered
            return _Discontinuity(max(expected - 1, 0), sequence_number - 1, page)
        return delivered

    async def __aenter__(self) -> SubscriptionAsync:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.unsubscribe()
        await self.wait_delivered()

    def __repr__(self) -> str:
        return (
            f"TopicSubscribe.SubscriptionAsync(cache_name={self._cache_name!r}, topic_name={self._topic_name!r}, "
            f"resume_at_sequence_number={self._next_sequence_number}, sequence_page={self._sequence_page}, "
            f"state={self._state.value!r})"
        )

    # -- for the clients --------------------------------------------------------------------------------

    async def start(self, heartbeat_within: float) -> None:
        """Open the first stream and wait (up to ``heartbeat_within`` seconds) for its heartbeat, so that the
        subscription is live when ``subscribe`` returns. A server that is restarting or too busy to take the
        call (UNAVAILABLE, or a stream it reset) is asked again, with backoff, within that time. Raises what
        failed (the client maps it to an Error)."""
        last_error: grpc.aio.AioRpcError | None = None
        try:
            async with asyncio.timeout(heartbeat_within):
                attempt = 0
                while True:
                    try:
                        await self._open_first_stream()
                        break
                    except grpc.aio.AioRpcError as error:
                        if error.code() not in START_RETRYABLE:
                            raise
                        last_error = error
                    await asyncio.sleep(self._backoff(attempt))
                    attempt += 1
        except TimeoutError:
            self._state = _State.DONE
            if last_error is not None:
                raise last_error from None
            raise
        except BaseException:
            self._state = _State.DONE
            raise
        if self._include_heartbeats:
            self._pending = HEARTBEAT

    async def _open_first_stream(self) -> None:
        call = self._call = self._open_stream(self._next_sequence_number, self._sequence_page)
        self._opened_at = self._loop.time()
        try:
            first = await call.read()
        except BaseException:
            self._call = None
            call.cancel()
            raise
        if first is _EOF or first.WhichOneof("kind") != "heartbeat":
            self._call = None
            call.cancel()
            raise ConnectionError("the Subscribe stream did not start with a heartbeat")

    def deliver_to(self, callbacks: Callbacks) -> asyncio.Task[None]:
        """Start (and return) the task that delivers every item to ``callbacks``; it ends after the final Error."""
        self._delivery = self._loop.create_task(
            self._deliver(callbacks), name=f"tidings-subscription:{self._cache_name}/{self._topic_name}"
        )
        return self._delivery

    async def wait_delivered(self) -> None:
        """Wait until the callback task (if any) delivered the final Error; unless called from it."""
        delivery = self._delivery
        if delivery is not None and delivery is not asyncio.current_task():
            await asyncio.shield(delivery)

    def finish_without_loop(self) -> TopicSubscriptionItem.Error | None:
        """For the sync wrapper: the final Error (once) if the subscription ended, else None."""
        if self._state is _State.ENDING:
            return self._finish()
        if self._state is _State.DONE:
            raise StopAsyncIteration
        return None

    # -- inside ----------------------------------------------------------------------------------------

    def _finish(self) -> TopicSubscriptionItem.Error:
        if self._state is _State.DONE or self._final is None:
            self._state = _State.DONE
            raise StopAsyncIteration
        final, self._final = self._final, None
        self._state = _State.DONE
        return final

    def _release(self) -> None:
        """Cancel the stream, end a backoff wait, let go of the channel, and tell the client (on the loop)."""
        call, self._call = self._call, None
        if call is not None:
            call.cancel()
        self._open_stream = _no_more_streams
        self._wakeup.set()
        if self._on_closed is not None:
            self._on_closed(self)

    def _stream_failed(self, error: grpc.aio.AioRpcError) -> None:
        self._call = None
        if self._state is not _State.OPEN:
            return
        if error.code() in RETRYABLE:
            if self._loop.time() - self._opened_at > BACKOFF_CAP:
                self._attempts = 0
            return
        self._final = error_from(TopicSubscriptionItem.Error, error)
        self._state = _State.ENDING
        self._release()

    async def _resubscribe(self) -> None:
        """Wait the backoff (cut short by `unsubscribe`), then open a stream at the resume point."""
        delay = self._backoff(self._attempts)
        self._attempts += 1
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._wakeup.wait()
        if self._state is not _State.OPEN:
            return
        self._resubscriptions += 1
        try:
            self._call = self._open_stream(self._next_sequence_number, self._sequence_page)
        except Exception as error:  # the channel is unusable (closed under us): nothing to retry with
            self._final = error_from(TopicSubscriptionItem.Error, error)
            self._state = _State.ENDING
            self._release()
            return
        self._opened_at = self._loop.time()

    async def _deliver(self, callbacks: Callbacks) -> None:
        while True:
            try:
                item = await self.__anext__()
            except StopAsyncIteration:
                return
            callback = callbacks.for_item(item)
            if callback is None:
                continue
            try:
                result = callback(item)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                logger.exception("a callback of the subscription to %s/%s failed", self._cache_name, self._topic_name)
