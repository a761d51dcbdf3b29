"""Where a subscription resumes: a sequence page and a sequence number within it (README *Subscriptions, resume
and discontinuities*)."""

from __future__ import annotations

from dataclasses import dataclass

from tidings.server.core._events import Discontinuity


@dataclass(frozen=True, slots=True)
class Position:
    """A point in a topic's history: ``sequence_number`` counted within ``sequence_page``.

    It travels as one value wherever a resume point is passed (a subscription's resume request, an engine's
    ``follow``, a webhook's cursor), so page and number are never swapped. A ``sequence_number`` of 0 is no
    position (the subscription starts with the newest retained messages); a ``sequence_page`` of 0 matches any
    page.
    """

    sequence_page: int
    sequence_number: int


def resume_position(
    page: int, first: int, next_: int, resume_at: Position, latest: int = 1
) -> tuple[int, Discontinuity | None]:
    """Where a new subscription starts reading, and the discontinuity it gets first (if any).

    ``page``, ``first`` and ``next_`` describe the topic instance (its page, oldest retained and next
    sequence number); ``resume_at`` is the request's position (README *Subscriptions, resume and
    discontinuities*); ``latest`` is how many of the newest retained messages a subscription without a position
    starts with.
    """
    number = resume_at.sequence_number
    if number == 0:  # Rule 2: the newest ``latest`` retained messages of the current page, then live.
        return max(first, next_ - latest), None
    if resume_at.sequence_page not in (0, page):  # Rule 4: the topic was reset; replay the current page.
        return first, Discontinuity(number - 1, first - 1, page)
    if number > next_:  # Rule 5: from the future; jump to the current position.
        return next_, Discontinuity(number - 1, next_ - 1, page)
    if number < first:  # Rule 3: older than the oldest retained message.
        return first, Discontinuity(number - 1, first - 1, page)
    return number, None
