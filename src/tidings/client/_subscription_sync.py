"""`Subscription`: the blocking face of a `SubscriptionAsync`, which runs on its client's loop thread."""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from types import TracebackType

from tidings.client._callbacks import Callbacks
from tidings.client._items import SubscriptionItem
from tidings.client._loop import LoopThread
from tidings.client._subscription import SubscriptionAsync, SubscriptionStatistics

logger = logging.getLogger("tidings.client")


async def _next_or_none(subscription: SubscriptionAsync) -> SubscriptionItem | None:
    try:
        return await subscription.__anext__()
    except StopAsyncIteration:
        return None


class Subscription:
    """A subscription of `TopicClient`: an iterator of `TopicSubscriptionItem` responses.

    ``for item in subscription`` blocks for each item and ends after one ``Error``; `unsubscribe` ends it at
    once, from any thread; ``with subscription:`` unsubscribes on exit. With callbacks, a thread owned by the
    subscription delivers the items instead (in order, one at a time), and iterating is an error.
    """

    def __init__(self, subscription: SubscriptionAsync, loop: LoopThread) -> None:
        self._async = subscription
        self._loop = loop
        self._in_flight: concurrent.futures.Future[SubscriptionItem | None] | None = None
        self._delivery: threading.Thread | None = None

    @property
    def cache_name(self) -> str:
        """The cache of the topic."""
        return self._async.cache_name

    @property
    def topic_name(self) -> str:
        """The topic subscribed to."""
        return self._async.topic_name

    @property
    def resume_at_sequence_number(self) -> int:
        """The sequence number after the last item delivered; pass it with `sequence_page` to resume later."""
        return self._async.resume_at_sequence_number

    @property
    def sequence_page(self) -> int:
        """The page of the last item or discontinuity delivered (0 while unknown)."""
        return self._async.sequence_page

    @property
    def is_closed(self) -> bool:
        """Whether the subscription ended (unsubscribed, client closed, or failed)."""
        return self._async.is_closed

    def statistics(self) -> SubscriptionStatistics:
        """How often this subscription resubscribed and dropped a duplicate."""
        return self._async.statistics()

    def unsubscribe(self) -> None:
        """End the subscription now (the iterator yields an ``Error`` with ``CANCELLED`` and stops).

        Safe from any thread, and more than once; it does not wait for a callback in progress (`join` does).
        """
        self._async.unsubscribe()

    @property
    def is_delivering(self) -> bool:
        """Whether a callback thread is (still) delivering items."""
        return self._delivery is not None and self._delivery.is_alive()

    def join(self, timeout: float | None = None) -> None:
        """Wait until the callback thread (if any) delivered the final Error; unless called from it."""
        delivery = self._delivery
        if delivery is not None and delivery is not threading.current_thread():
            delivery.join(timeout)

    def __iter__(self) -> Subscription:
        if self._delivery is not None:
            raise RuntimeError("this subscription delivers to its callbacks; it cannot also be iterated")
        return self

    def __next__(self) -> SubscriptionItem:
        subscription = self._async
        try:
            final = subscription.finish_without_loop()
            if final is not None:
                return final
            future = self._in_flight
            if future is None:
                try:
                    future = self._in_flight = self._loop.submit(_next_or_none(subscription))
                except RuntimeError:  # the client closed, which ended the subscription
                    final = subscription.finish_without_loop()
                    if final is None:
                        raise
                    return final
            try:
                item = future.result()
            except concurrent.futures.CancelledError:
                final = subscription.finish_without_loop()
                if final is None:
                    raise
                return final
            finally:
                if future.done():  # an interrupt (Ctrl-C) leaves it in flight for the next call
                    self._in_flight = None
        except StopAsyncIteration:
            raise StopIteration from None
        if item is None:
            raise StopIteration
        return item

    def __enter__(self) -> Subscription:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.unsubscribe()
        self.join()

    def __repr__(self) -> str:
        return repr(self._async).replace("SubscriptionAsync", "Subscription", 1)

    def deliver_to(self, callbacks: Callbacks) -> None:
        """Start the thread that delivers every item to ``callbacks`` (it ends after the final Error)."""
        self._delivery = threading.Thread(
            target=self._deliver,
            args=(callbacks,),
            name=f"tidings-subscription:{self.cache_name}/{self.topic_name}",
            daemon=True,
        )
        self._delivery.start()

    def _deliver(self, callbacks: Callbacks) -> None:
        while True:
            try:
                item = self.__next__()
            except StopIteration:
                return
            callback = callbacks.for_item(item)
            if callback is None:
                continue
            try:
                callback(item)
            except Exception:
                logger.exception("a callback of the subscription to %s/%s failed", self.cache_name, self.topic_name)
