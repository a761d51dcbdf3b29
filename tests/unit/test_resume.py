"""Where a new subscription starts: PROTOCOL.md *Subscribe* rules 2 to 5 and the discontinuity fields."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidings.server.core import Discontinuity, Position, resume_position

# A topic instance in page 7 that retains sequence numbers 4..9 (the next one published is 10).
PAGE, FIRST, NEXT = 7, 4, 10
STALE = 3

CASES = {
    # Rule 2: N = 0 starts with the newest retained message of the current page, whatever the page.
    "rule2-latest": (0, 0, NEXT - 1, None),
    "rule2-latest-current-page": (0, PAGE, NEXT - 1, None),
    "rule2-latest-stale-page": (0, STALE, NEXT - 1, None),
    # Rule 3: N > 0 and P in (0, current): replay from N...
    "rule3-replay-unknown-page": (5, 0, 5, None),
    "rule3-replay-current-page": (5, PAGE, 5, None),
    "rule3-replay-from-oldest": (FIRST, PAGE, FIRST, None),
    "rule3-newest": (NEXT - 1, PAGE, NEXT - 1, None),
    "rule3-caught-up": (NEXT, PAGE, NEXT, None),
    "rule3-caught-up-unknown-page": (NEXT, 0, NEXT, None),
    # ... with a discontinuity first when N is older than the oldest retained message.
    "rule3-older-than-retained": (2, 0, FIRST, Discontinuity(1, FIRST - 1, PAGE)),
    "rule3-from-one-older-than-retained": (1, PAGE, FIRST, Discontinuity(0, FIRST - 1, PAGE)),
    "rule3-just-older-than-retained": (FIRST - 1, PAGE, FIRST, Discontinuity(FIRST - 2, FIRST - 1, PAGE)),
    # Rule 4: P is neither 0 nor current: discontinuity to the current page, replay everything retained.
    "rule4-stale-page": (5, STALE, FIRST, Discontinuity(4, FIRST - 1, PAGE)),
    "rule4-stale-page-from-one": (1, STALE, FIRST, Discontinuity(0, FIRST - 1, PAGE)),
    "rule4-stale-page-caught-up-number": (NEXT, STALE, FIRST, Discontinuity(NEXT - 1, FIRST - 1, PAGE)),
    "rule4-stale-page-future-number": (50, STALE, FIRST, Discontinuity(49, FIRST - 1, PAGE)),
    "rule4-newer-page": (5, PAGE + 1, FIRST, Discontinuity(4, FIRST - 1, PAGE)),
    # Rule 5: N beyond the last published + 1: discontinuity to the current position, then live.
    "rule5-future-unknown-page": (NEXT + 1, 0, NEXT, Discontinuity(NEXT, NEXT - 1, PAGE)),
    "rule5-future-current-page": (NEXT + 1, PAGE, NEXT, Discontinuity(NEXT, NEXT - 1, PAGE)),
    "rule5-far-future": (10**9, PAGE, NEXT, Discontinuity(10**9 - 1, NEXT - 1, PAGE)),
}


@pytest.mark.parametrize(("resume_at", "resume_page", "cursor", "discontinuity"), CASES.values(), ids=CASES.keys())
def test_resume_position_follows_subscribe_rules(
    resume_at: int, resume_page: int, cursor: int, discontinuity: Discontinuity | None
) -> None:
    # Act
    result = resume_position(PAGE, FIRST, NEXT, Position(resume_page, resume_at))

    # Assert
    assert result == (cursor, discontinuity)


LATEST_CASES = {
    "live-only": (0, NEXT),
    "newest-one": (1, NEXT - 1),
    "newest-three": (3, NEXT - 3),
    "all-retained": (NEXT - FIRST, FIRST),
    "more-than-retained": (1000, FIRST),
}


@pytest.mark.parametrize(("latest", "cursor"), LATEST_CASES.values(), ids=LATEST_CASES.keys())
def test_resume_position_without_a_position_starts_with_the_newest_messages(latest: int, cursor: int) -> None:
    # Act
    result = resume_position(PAGE, FIRST, NEXT, Position(0, 0), latest)

    # Assert: never older than the oldest retained message, and no discontinuity (nothing was asked for).
    assert result == (cursor, None)


EMPTY_CASES = {
    "latest-of-nothing": (0, 0, None),
    "from-one": (1, 0, None),
    "from-one-current-page": (1, PAGE, None),
    "future": (5, 0, Discontinuity(4, 0, PAGE)),
    "stale-page": (5, STALE, Discontinuity(4, 0, PAGE)),
    "stale-page-from-one": (1, STALE, Discontinuity(0, 0, PAGE)),
}


@pytest.mark.parametrize(("resume_at", "resume_page", "discontinuity"), EMPTY_CASES.values(), ids=EMPTY_CASES.keys())
def test_resume_position_on_a_topic_with_nothing_published(
    resume_at: int, resume_page: int, discontinuity: Discontinuity | None
) -> None:
    # Act
    result = resume_position(PAGE, 1, 1, Position(resume_page, resume_at))

    # Assert
    assert result == (1, discontinuity)


@st.composite
def _positions(draw: st.DrawFn) -> tuple[int, int, int, int, int, int]:
    page = draw(st.integers(1, 2**63))
    first = draw(st.integers(1, 1000))
    next_ = draw(st.integers(first, first + 1000))
    resume_at = draw(st.integers(0, next_ + 1000))
    resume_page = draw(st.one_of(st.just(0), st.just(page), st.integers(1, 2**64 - 1)))
    latest = draw(st.integers(0, 2000))
    return page, first, next_, resume_at, resume_page, latest


@given(_positions())
def test_resume_position_discontinuity_points_at_the_cursor(position: tuple[int, int, int, int, int, int]) -> None:
    # Arrange
    page, first, next_, resume_at, resume_page, latest = position
    same_page = resume_page in (0, page)

    # Act
    cursor, discontinuity = resume_position(page, first, next_, Position(resume_page, resume_at), latest)

    # Assert: the cursor is retained (or next); a discontinuity says exactly where items resume.
    assert first <= cursor <= next_
    if resume_at == 0:
        assert (cursor, discontinuity) == (max(first, next_ - latest), None)
    elif same_page and first <= resume_at <= next_:
        assert (cursor, discontinuity) == (resume_at, None)
    else:
        assert discontinuity == Discontinuity(resume_at - 1, cursor - 1, page)
        assert cursor == (first if not same_page or resume_at < first else next_)
