"""Retention counts every encoding cached on a message, and drops encodings before messages.

How far back a subscriber can resume depends on the values published, never on which transports read them
(issue 16 item 7); the memory bounds (``--retention-size``, ``--max-retained-bytes``) hold with every
encoding counted, SSE's included (item 9). Encodings kept over a bound for the subscribers a publish woke
are dropped when the buffer settles: the tests run those settles themselves, as the event loop would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidings.server.core import Encoder, Limits, Message, PageClock, TopicCursor, TopicLog
from tidings.server.core._delivery import Delivery
from tidings.server.engine.memory import MemoryEngine
from tidings.server.grpc._pubsub import encode_message
from tidings.server.http._encoding import encode_item, sse_item

from ._support import RecordingEngine
from .conftest import CACHE, TOPIC, MakeService

T = TypeVar("T")

PAGE = 42
MiB = 1024 * 1024
VALUE_SIZE = 4_000
PUBLISHED = 300
RETAINED = MiB // VALUE_SIZE  # 262 values of 4,000 bytes fit in 1 MiB
# Every encoding a message can get: gRPC (both transports), the long-poll's JSON, and SSE (built on the JSON).
TRANSPORTS: tuple[Callable[[Message], bytes], ...] = (encode_message, encode_item, sse_item)


class Loop:
    """Stands in for the event loop: collects the settles buffers defer, and runs them when told."""

    def __init__(self) -> None:
        self.pending: list[Callable[[], None]] = []

    def defer(self, callback: Callable[[], None]) -> None:
        self.pending.append(callback)

    def run_ready(self) -> None:
        pending, self.pending = self.pending, []
        for callback in pending:
            callback()


class _Listener:
    log: TopicLog

    def messages_arrived(self) -> None:
        pass

    def page_changed(self) -> None:
        raise AssertionError("the memory engine never changes a page")


def _at_once(call: Coroutine[Any, Any, T]) -> T:
    """The result of a memory engine call, which never suspends (so these tests step the loop themselves)."""
    try:
        call.send(None)
    except StopIteration as done:
        return cast(T, done.value)
    raise AssertionError("the memory engine suspended")


def _open(engine: MemoryEngine, topic_name: str, pages: PageClock) -> _Listener:
    listener = _Listener()
    listener.log = _at_once(engine.open_topic("c", topic_name, pages, listener))
    return listener


def _publish(engine: MemoryEngine, topic: _Listener, value: str | bytes, size: int) -> Message:
    return _at_once(engine.publish(topic, value, "publisher", size, 0.0))


def _held(log: TopicLog) -> int:
    """The bytes the log's messages really hold: values plus every encoding cached on them."""
    retained = log.read_from(log.first_sequence_number, log.next_sequence_number)
    return sum(m.size + sum(map(len, (m.encodings or {}).values())) for m in retained)


def _value(i: int) -> str:
    return f"{i:04d}".ljust(VALUE_SIZE, "v")


def _publish_4000_byte_values(reading: str, published: int = PUBLISHED) -> tuple[MemoryEngine, TopicLog]:
    """``published`` values of 4,000 bytes into one topic under a 1 MiB bound, per topic and for the process;
    ``reading``: nobody reads, live subscribers over every transport read each one as it is published,
    or a subscriber resumes from the oldest once all are published."""
    loop = Loop()
    engine = MemoryEngine(1000, MiB, MiB, defer=loop.defer)
    opened = _open(engine, "t", PageClock(6, wall_clock=lambda: 0.0))
    topic = opened.log
    for i in range(published):
        message = _publish(engine, opened, _value(i), VALUE_SIZE)
        if reading == "live":
            for encode in TRANSPORTS:
                encode(message)
        loop.run_ready()
    if reading == "replay":
        for message in topic.read_from(topic.first_sequence_number, PUBLISHED):
            for encode in TRANSPORTS:
                encode(message)
        loop.run_ready()
    return engine, topic


READINGS = pytest.mark.parametrize("reading", ["live", "replay"])


@READINGS
def test_memory_engine_resume_depth_of_4000_byte_values_does_not_depend_on_who_read_them(reading: str) -> None:
    # Act
    _, unread = _publish_4000_byte_values("unread")
    _, read = _publish_4000_byte_values(reading)

    # Assert: the 262 newest are retained whether or not gRPC, JSON and SSE encodings were cached.
    oldest = PUBLISHED - RETAINED + 1
    assert (read.first_sequence_number, read.next_sequence_number) == (oldest, PUBLISHED + 1)
    assert (unread.first_sequence_number, unread.next_sequence_number) == (oldest, PUBLISHED + 1)


@READINGS
@pytest.mark.parametrize("published", [100, PUBLISHED], ids=["values-leave-room", "values-fill-it"])
def test_memory_engine_retained_bytes_count_every_encoding_and_stay_within_the_bounds(
    reading: str, published: int
) -> None:
    # Act
    engine, topic = _publish_4000_byte_values(reading, published)

    # Assert: what the messages hold, SSE frames included, is what retention counts, within 1 MiB; where the
    # values leave room, the newest messages keep their encodings.
    assert engine.budget is not None
    assert topic.retained_bytes == engine.budget.used_bytes == _held(topic)
    assert _held(topic) <= MiB
    assert (topic.encoded_bytes > 0) == (published == 100)


def test_memory_log_drops_the_oldest_messages_encodings_before_any_message() -> None:
    # Arrange: four 200-byte values and a 50-byte encoding on each fill the 1,000 bytes.
    loop = Loop()
    log = TopicLog(PAGE, max_count=100, max_bytes=1000, defer=loop.defer)
    messages = [log.append(b"x" * 200, "", 200) for _ in range(4)]
    for message in messages:
        message.encoded("a", lambda m: bytes(50))

    # Act: 100 more bytes of encoding for the newest.
    messages[-1].encoded("b", lambda m: bytes(100))

    # Assert: the two oldest messages lost their encodings; every message is still retained.
    assert [m.encodings is None for m in messages] == [True, True, False, False]
    assert (log.first_sequence_number, log.retained_bytes, log.encoded_bytes) == (1, 1000, 200)
    assert loop.pending == []


def test_memory_log_shares_an_encoding_over_its_bound_until_it_settles() -> None:
    # Arrange: values fill the bound, so the newest message's encoding has no room.
    loop = Loop()
    log = TopicLog(PAGE, max_count=100, max_bytes=1000, defer=loop.defer)
    for _ in range(5):
        newest = log.append(b"x" * 200, "", 200)
    made: list[Message] = []

    def encode(message: Message) -> bytes:
        made.append(message)
        return bytes(300)

    # Act: every subscriber the publish woke asks for it before the loop settles the log.
    first = newest.encoded("wire", encode)
    second = newest.encoded("wire", encode)
    held_before_settling = log.retained_bytes
    loop.run_ready()

    # Assert: made once and shared; dropped on settling, with no message dropped.
    assert second is first
    assert made == [newest]
    assert held_before_settling == 1300
    assert (log.first_sequence_number, log.retained_bytes, newest.encodings) == (1, 1000, None)


def test_memory_log_serves_an_encoding_made_again_for_a_bare_message_uncached() -> None:
    # Arrange: the newest message's encoding was dropped when the full log settled.
    loop = Loop()
    log = TopicLog(PAGE, max_count=100, max_bytes=1000, defer=loop.defer)
    for _ in range(5):
        newest = log.append(b"x" * 200, "", 200)
    newest.encoded("wire", lambda m: bytes(300))
    loop.run_ready()

    # Act: a subscriber resuming from there asks for it again.
    again = newest.encoded("wire", lambda m: bytes(300))

    # Assert
    assert again == bytes(300)
    assert (newest.encodings, log.retained_bytes, loop.pending) == (None, 1000, [])


def _budget_engine(max_retained_bytes: int, loop: Loop) -> tuple[MemoryEngine, PageClock]:
    return MemoryEngine(100, 1000, max_retained_bytes, defer=loop.defer), PageClock(6, wall_clock=lambda: 0.0)


def test_retention_budget_drops_other_topics_encodings_before_emptying_them() -> None:
    # Arrange: "old" holds a 300-byte value and a 600-byte encoding of it.
    loop = Loop()
    engine, pages = _budget_engine(1000, loop)
    old_topic, new_topic = _open(engine, "old", pages), _open(engine, "new", pages)
    old = old_topic.log
    old_message = _publish(engine, old_topic, b"x" * 300, 300)
    old_message.encoded("wire", lambda m: bytes(600))

    # Act: 300 bytes published to "new" make 1,200.
    _publish(engine, new_topic, b"y" * 300, 300)

    # Assert: "old" lost its encoding, not its message.
    assert engine.budget is not None
    assert (old.first_sequence_number, old.next_sequence_number, old_message.encodings) == (1, 2, None)
    assert (engine.budget.used_bytes, engine.budget.trimmed_bytes) == (600, 0)


def test_retention_budget_keeps_the_growing_topics_new_encoding_until_it_settles() -> None:
    # Arrange
    loop = Loop()
    engine, pages = _budget_engine(1000, loop)
    first_topic, second_topic = _open(engine, "a", pages), _open(engine, "b", pages)
    first, second = first_topic.log, second_topic.log
    _publish(engine, first_topic, b"x" * 400, 400)
    message = _publish(engine, second_topic, b"y" * 400, 400)

    # Act: an 800-byte encoding for "b", shared by its subscribers, then the loop settles.
    made = message.encoded("wire", lambda m: bytes(800))
    shared = message.encoded("wire", lambda m: bytes(800))
    used_before_settling = engine.budget.used_bytes if engine.budget else 0
    loop.run_ready()

    # Assert: both topics keep their messages; the encoding is dropped once it settles.
    assert engine.budget is not None
    assert (shared is made, used_before_settling) == (True, 1600)
    assert (first.retained_bytes, second.retained_bytes, engine.budget.used_bytes) == (400, 400, 800)
    assert engine.budget.trimmed_bytes == 0


async def _caught_up(subscription: TopicCursor) -> TopicCursor:
    while subscription.take_ready() is not None:
        pass
    return subscription


async def test_publish_wakes_subscribers_that_share_the_encoding_kept_over_the_bound(
    make_service: MakeService, engines: list[RecordingEngine]
) -> None:
    # Arrange: values fill the topic's 1,000 bytes. A subscriber written to from the publish (it encodes during
    # the publish, first) and one whose reader the publish wakes (it encodes on the loop's next turn) both wait.
    service = await make_service(Limits(max_message_bytes=100, retention_messages=100, retention_bytes=1000))
    for _ in range(10):
        await service.publish(CACHE, TOPIC, "x" * 100)
    made: list[Message] = []

    def encode(message: Message) -> bytes:
        made.append(message)
        return bytes(300)

    class Taking:
        def try_write(self, chunks: Sequence[bytes]) -> bool:
            return True

        async def write_all(self, chunks: Sequence[bytes]) -> None: ...

    def encode_once(message: Message) -> bytes:
        return message.encoded("wire", encode)

    pushed = await _caught_up(await service.subscribe(CACHE, TOPIC))
    pushed.direct = Delivery(Taking(), Encoder(encode_once, lambda _: b"", b""), None, service.clock)
    pushed.wait()
    woken = await _caught_up(await service.subscribe(CACHE, TOPIC))

    async def read() -> list[bytes]:
        return [event.encoded("wire", encode) for event in await woken.next_events() if isinstance(event, Message)]

    reader = asyncio.create_task(read())
    await asyncio.sleep(0)  # the reader parks

    # Act
    published = await service.publish(CACHE, TOPIC, "y" * 100)
    frames = await reader
    for _ in range(2):  # the loop settles the topic two turns on
        await asyncio.sleep(0)

    # Assert: encoded once for both; then dropped, keeping every message within the bound.
    log = engines[0].logs[CACHE, TOPIC]
    assert (made, frames) == ([published], [bytes(300)])
    assert (published.encodings, log.retained_bytes, log.first_sequence_number) == (None, 1000, 2)
    pushed.close()
    woken.close()


# --- model-based property ----------------------------------------------------------------------


@dataclass
class Append:
    size: int


@dataclass
class Encode:
    position: float  # 0..1 of the way from the oldest retained message to the newest
    transport: int
    size: int


@dataclass
class Settle:
    pass


def _encoder(size: int) -> Callable[[Message], bytes]:
    return lambda message: bytes(size)


_operations = st.lists(
    st.one_of(
        st.builds(Append, size=st.integers(1, 40)),
        st.builds(Encode, position=st.floats(0, 1), transport=st.integers(0, 3), size=st.integers(1, 60)),
        st.just(Settle()),
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(max_count=st.integers(1, 12), max_bytes=st.integers(1, 200), operations=_operations)
def test_memory_log_retains_by_values_and_counts_every_encoding(
    max_count: int, max_bytes: int, operations: list[Append | Encode | Settle]
) -> None:
    # Arrange: the model keeps the size of every message appended and the index of the oldest retained one.
    loop = Loop()
    log = TopicLog(PAGE, max_count, max_bytes, defer=loop.defer)
    sizes: list[int] = []
    start = 0

    for operation in operations:
        # Act
        if isinstance(operation, Append):
            log.append(b"v" * operation.size, "", operation.size)
            sizes.append(operation.size)
            while start < len(sizes) - 1 and (len(sizes) - start > max_count or sum(sizes[start:]) > max_bytes):
                start += 1
        elif isinstance(operation, Encode) and sizes:
            first = log.first_sequence_number
            sequence_number = first + round(operation.position * (log.next_sequence_number - 1 - first))
            [message] = log.read_from(sequence_number, 1)
            message.encoded(f"t{operation.transport}", _encoder(operation.size))
        elif isinstance(operation, Settle):
            loop.run_ready()

        # Assert: messages are retained by their values alone; every cached byte is counted; within the size
        # whenever nothing is waiting to settle (or the newest alone is over it, bare).
        assert (log.first_sequence_number, log.next_sequence_number) == (start + 1, len(sizes) + 1)
        assert log.retained_bytes == _held(log)
        if not loop.pending:
            assert log.retained_bytes <= max_bytes or (len(sizes) - start == 1 and log.encoded_bytes == 0)
