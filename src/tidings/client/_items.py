"""What a subscription yields: `TopicSubscriptionItem` and its ``Text``, ``Binary``, ``Heartbeat``,
``Discontinuity`` and ``Error`` responses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from tidings.client._errors import ErrorResponse


class TopicSubscriptionItem:
    """The items a subscription yields, for ``match`` and ``isinstance``.

    ``Text`` and ``Binary`` are published values; ``Heartbeat`` (only with ``include_heartbeats``) says the
    stream is alive; ``Discontinuity`` (only with ``include_discontinuities``) says items were skipped or the
    topic restarted; ``Error`` is always the last item of a subscription.
    """

    @dataclass(frozen=True, slots=True)
    class Text:
        """A text value; ``token_id`` is the publisher's disposable token id, or None."""

        value: str
        sequence_number: int
        sequence_page: int
        token_id: str | None = None

    @dataclass(frozen=True, slots=True)
    class Binary:
        """A binary value; ``token_id`` is the publisher's disposable token id, or None."""

        value: bytes
        sequence_number: int
        sequence_page: int
        token_id: str | None = None

    @dataclass(frozen=True, slots=True)
    class Heartbeat:
        """The stream is alive: the server sends one when a stream starts and after each idle interval."""

    @dataclass(frozen=True, slots=True)
    class Discontinuity:
        """Items were skipped: the next item is ``new_sequence_number + 1`` in page ``new_sequence_page``.

        ``last_sequence_number`` is the last one the subscription had (0 if unknown). A new page means the
        topic started over (it was idle and retired, or the server restarted).
        """

        last_sequence_number: int
        new_sequence_number: int
        new_sequence_page: int

    @dataclass(frozen=True, slots=True)
    class Error(ErrorResponse):
        """The subscription ended: a failure that resubscribing cannot fix, or ``CANCELLED`` (unsubscribed)."""


SubscriptionItem: TypeAlias = (
    TopicSubscriptionItem.Text
    | TopicSubscriptionItem.Binary
    | TopicSubscriptionItem.Heartbeat
    | TopicSubscriptionItem.Discontinuity
    | TopicSubscriptionItem.Error
)
"""Any item a subscription yields."""

TopicItem: TypeAlias = TopicSubscriptionItem.Text | TopicSubscriptionItem.Binary
"""A published value as a subscription yields it."""

HEARTBEAT = TopicSubscriptionItem.Heartbeat()
