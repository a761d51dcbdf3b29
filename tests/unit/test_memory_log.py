"""The topic log (core) and the memory engine over it: numbering, eviction by count and bytes, reads, compaction."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidings.server.core import Limits, Message, PageClock, Position, TopicLog
from tidings.server.engine.memory import MemoryEngine

PAGE = 42


def _append(log: TopicLog, size: int, publisher_id: str = "") -> int:
    return log.append(b"x" * size, publisher_id, size).sequence_number


def test_memory_log_numbers_from_one_in_its_page() -> None:
    # Arrange
    log = TopicLog(PAGE, max_count=10, max_bytes=1000)

    # Act
    messages = [log.append(f"m{i}", "pub", 2) for i in range(3)]

    # Assert
    assert [m.sequence_number for m in messages] == [1, 2, 3]
    assert {m.sequence_page for m in messages} == {PAGE}
    assert [m.value for m in messages] == ["m0", "m1", "m2"]
    assert {m.publisher_id for m in messages} == {"pub"}
    assert log.sequence_page == PAGE


def test_memory_log_empty_has_first_equal_to_next() -> None:
    # Act
    log = TopicLog(PAGE, max_count=10, max_bytes=1000)

    # Assert
    assert (log.first_sequence_number, log.next_sequence_number) == (1, 1)
    assert log.read_from(1, 10) == []
    assert log.retained_bytes == 0


def test_memory_log_evicts_oldest_beyond_count() -> None:
    # Arrange
    log = TopicLog(PAGE, max_count=3, max_bytes=1000)

    # Act
    for _ in range(5):
        _append(log, 1)

    # Assert
    assert (log.first_sequence_number, log.next_sequence_number) == (3, 6)
    assert [m.sequence_number for m in log.read_from(3, 10)] == [3, 4, 5]
    assert log.retained_bytes == 3


def test_memory_log_evicts_oldest_beyond_bytes() -> None:
    # Arrange
    log = TopicLog(PAGE, max_count=100, max_bytes=10)

    # Act
    for size in (4, 4, 4, 3):  # 4+4+4 > 10 evicts #1; then 4+4+3 > 10 evicts #2.
        _append(log, size)

    # Assert
    assert (log.first_sequence_number, log.next_sequence_number) == (3, 5)
    assert log.retained_bytes == 7


@pytest.mark.parametrize("size", [11, 1000], ids=["just-over", "far-over"])
def test_memory_log_keeps_newest_message_even_over_byte_bound(size: int) -> None:
    # Arrange
    log = TopicLog(PAGE, max_count=100, max_bytes=10)
    _append(log, 5)

    # Act
    sequence_number = _append(log, size)

    # Assert
    assert (log.first_sequence_number, log.next_sequence_number) == (sequence_number, sequence_number + 1)
    assert [m.size for m in log.read_from(sequence_number, 10)] == [size]
    assert log.retained_bytes == size


@pytest.mark.parametrize(
    ("start", "limit", "expected"),
    [
        (3, 10, [3, 4, 5, 6]),
        (3, 2, [3, 4]),
        (5, 1, [5]),
        (6, 100, [6]),
        (7, 10, []),
        (4, 0, []),
    ],
    ids=["oldest-all", "oldest-limited", "middle-one", "newest", "next-is-empty", "zero-limit"],
)
def test_memory_log_read_from_honours_start_and_limit(start: int, limit: int, expected: list[int]) -> None:
    # Arrange
    log = TopicLog(PAGE, max_count=4, max_bytes=1000)
    for _ in range(6):
        _append(log, 1)

    # Act
    batch = log.read_from(start, limit)

    # Assert
    assert [m.sequence_number for m in batch] == expected


def test_memory_log_reads_stay_correct_across_compaction() -> None:
    # Arrange: enough evictions to compact the dead prefix several times.
    log = TopicLog(PAGE, max_count=5, max_bytes=1000)

    # Act
    for i in range(1, 1001):
        log.append(str(i), "", 1)

    # Assert
    assert (log.first_sequence_number, log.next_sequence_number) == (996, 1001)
    assert [m.value for m in log.read_from(996, 10)] == ["996", "997", "998", "999", "1000"]
    assert [m.value for m in log.read_from(999, 10)] == ["999", "1000"]


class _Listener:
    """The core's side of a topic, as the engine sees it: the log the engine opened, and arrivals counted."""

    log: TopicLog

    def __init__(self) -> None:
        self.arrivals = 0

    def messages_arrived(self) -> None:
        self.arrivals += 1

    def page_changed(self) -> None:
        raise AssertionError("the memory engine never changes a page")


async def _open(engine: MemoryEngine, topic_name: str, pages: PageClock) -> _Listener:
    listener = _Listener()
    listener.log = await engine.open_topic("c", topic_name, pages, listener)
    return listener


async def test_memory_engine_opens_independent_logs_with_its_retention() -> None:
    # Arrange
    engine = MemoryEngine(retention_messages=2, retention_bytes=100)
    pages = PageClock(6, wall_clock=lambda: 0.0)

    # Act
    first = await _open(engine, "t", pages)
    second = await _open(engine, "t", pages)
    published = [await engine.publish(first, b"x", "", 1, 0.0) for _ in range(3)]
    await engine.follow(first, Position(first.log.sequence_page, 1))  # nothing to wait for
    await engine.retire_topic(second)

    # Assert
    assert (first.log.sequence_page, second.log.sequence_page) == (7, 8)
    assert [m.sequence_number for m in published] == [1, 2, 3]
    assert first.arrivals == 3
    assert (first.log.first_sequence_number, first.log.next_sequence_number) == (2, 4)
    assert (second.log.first_sequence_number, second.log.next_sequence_number) == (1, 1)


async def test_memory_engine_publish_wakes_the_subscribers_without_suspending() -> None:
    # Arrange: a publish that suspended would not finish on the first step of its coroutine.
    engine = MemoryEngine(retention_messages=2, retention_bytes=100)
    topic = await _open(engine, "t", PageClock(6, wall_clock=lambda: 0.0))
    publishing = engine.publish(topic, b"x", "", 1, 0.0)

    # Act
    with pytest.raises(StopIteration) as finished:
        publishing.send(None)

    # Assert
    assert finished.value.value.sequence_number == 1
    assert topic.arrivals == 1


def test_memory_log_restart_continues_empty_in_a_new_page() -> None:
    # Arrange
    log = TopicLog(PAGE, max_count=10, max_bytes=1000)
    for _ in range(3):
        _append(log, 5)

    # Act
    log.restart(PAGE + 1, 7)
    seq = _append(log, 5)

    # Assert
    assert seq == 7
    assert (log.sequence_page, log.first_sequence_number, log.retained_bytes) == (PAGE + 1, 7, 5)


# --- model-based property ----------------------------------------------------------------------


@dataclass
class Append:
    count: int
    size: int


@dataclass
class Read:
    position: float  # 0..1 of the way from the oldest retained to the next sequence number
    limit: int


_operations = st.lists(
    st.one_of(
        st.builds(Append, count=st.integers(1, 80), size=st.integers(1, 40)),
        st.builds(Read, position=st.floats(0, 1), limit=st.integers(0, 50)),
    ),
    max_size=30,
)


@settings(max_examples=150, deadline=None)
@given(max_count=st.integers(1, 20), max_bytes=st.integers(1, 200), operations=_operations)
def test_memory_log_matches_a_plain_list_model(max_count: int, max_bytes: int, operations: list[Append | Read]) -> None:
    # Arrange: the model keeps every message ever appended and a start index.
    log = TopicLog(PAGE, max_count, max_bytes)
    model: list[tuple[int, int]] = []  # (sequence number, size) of every message appended
    start = 0  # index in ``model`` of the oldest retained message
    retained_bytes = 0

    for operation in operations:
        if isinstance(operation, Append):
            for _ in range(operation.count):
                # Act
                message = log.append(b"v" * operation.size, "", operation.size)
                model.append((len(model) + 1, operation.size))
                retained_bytes += operation.size
                while start < len(model) - 1 and (len(model) - start > max_count or retained_bytes > max_bytes):
                    retained_bytes -= model[start][1]
                    start += 1

                # Assert
                assert message.sequence_number == len(model)
        else:
            first, next_ = start + 1, len(model) + 1
            sequence_number = first + int(operation.position * (next_ - first))

            # Act
            batch = log.read_from(sequence_number, operation.limit)

            # Assert
            expected = model[sequence_number - 1 : sequence_number - 1 + operation.limit]
            assert [(m.sequence_number, m.size) for m in batch] == expected
        assert log.first_sequence_number == start + 1
        assert log.next_sequence_number == len(model) + 1
        assert log.retained_bytes == retained_bytes == sum(size for _, size in model[start:])


# --- retention counts what messages hold (see also test_retention_encodings.py); the process-wide budget ---


def _encode_twice(message: Message) -> bytes:
    return bytes(2 * message.size)


def test_memory_log_does_not_count_encodings_of_evicted_messages() -> None:
    log = TopicLog(PAGE, max_count=1, max_bytes=1000)
    old = log.append(b"a", "", 1)
    log.append(b"b", "", 1)

    old.encoded("wire", _encode_twice)  # a subscriber still sending it

    assert log.retained_bytes == 1


def _budget_engine(max_retained_bytes: int) -> tuple[MemoryEngine, PageClock]:
    return MemoryEngine(100, 1000, max_retained_bytes), PageClock(6, wall_clock=lambda: 0.0)


async def test_retention_budget_empties_the_least_recently_published_topics_first() -> None:
    # Arrange
    engine, pages = _budget_engine(max_retained_bytes=1000)
    opened = {name: await _open(engine, name, pages) for name in ("old", "mid", "new")}
    topics = {name: topic.log for name, topic in opened.items()}
    for name in ("old", "mid", "new"):
        await engine.publish(opened[name], b"x" * 300, "", 300, 0.0)

    # Act: 300 more bytes for "mid" make 1,200.
    await engine.publish(opened["mid"], b"y" * 300, "", 300, 0.0)

    # Assert
    assert engine.budget is not None
    assert [topics[name].retained_bytes for name in ("old", "mid", "new")] == [0, 600, 300]
    assert (engine.budget.used_bytes, engine.budget.trimmed_bytes) == (900, 300)
    assert topics["old"].first_sequence_number == topics["old"].next_sequence_number == 2


async def test_retention_budget_keeps_the_newest_message_of_the_topic_being_published() -> None:
    engine, pages = _budget_engine(max_retained_bytes=500)
    opened = await _open(engine, "a", pages)
    topic = opened.log
    for _ in range(3):
        await engine.publish(opened, b"x" * 200, "", 200, 0.0)

    assert (topic.first_sequence_number, topic.next_sequence_number) == (3, 4)
    assert engine.budget is not None
    assert engine.budget.used_bytes == topic.retained_bytes == 200


async def test_retired_topics_give_their_bytes_back_to_the_budget() -> None:
    engine, pages = _budget_engine(max_retained_bytes=10_000)
    topic = await _open(engine, "a", pages)
    await engine.publish(topic, b"x" * 300, "", 300, 0.0)

    topic.log.forget()  # what the core does when it retires the topic
    await engine.retire_topic(topic)

    assert engine.budget is not None
    assert (engine.budget.used_bytes, len(engine.budget)) == (0, 0)


def test_retention_budget_refuses_a_limit_below_one_topic() -> None:
    with pytest.raises(ValueError, match="max_retained_bytes"):
        Limits(retention_bytes=2048, max_message_bytes=1024, max_retained_bytes=1024)
