"""Callback-style delivery: which of a subscriber's callbacks an item goes to."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tidings.client._items import SubscriptionItem, TopicSubscriptionItem

Callback = Callable[[Any], object]


@dataclass(frozen=True, slots=True)
class Callbacks:
    """The ``on_*`` arguments of ``subscribe``; None means the subscriber does not want that kind."""

    on_item: Callback | None = None
    on_discontinuity: Callback | None = None
    on_heartbeat: Callback | None = None
    on_error: Callback | None = None

    @property
    def are_set(self) -> bool:
        """Whether any callback was given (then the subscription delivers to them, not to an iterator)."""
        return any(
            callback is not None for callback in (self.on_item, self.on_discontinuity, self.on_heartbeat, self.on_error)
        )

    def for_item(self, item: SubscriptionItem) -> Callback | None:
        """The callback that receives ``item``, if the subscriber gave one."""
        match item:
            case TopicSubscriptionItem.Text() | TopicSubscriptionItem.Binary():
                return self.on_item
            case TopicSubscriptionItem.Heartbeat():
                return self.on_heartbeat
            case TopicSubscriptionItem.Discontinuity():
                return self.on_discontinuity
            case _:
                return self.on_error
