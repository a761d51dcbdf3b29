"""A model-based property test of PROTOCOL.md *Subscribe* end to end through TopicsService, over every engine.

Random interleavings of publishes (with a small retention), subscriptions with random (N, P), reads by
some subscribers and not others (so some fall behind), subscriptions closing and topic instances being
retired (so stale pages exist). Every read is compared with a model written from the protocol text, and
each subscriber's whole stream is checked against the sequence rules on its own. Subscriptions without a
position (N = 0) ask for a random number of the newest retained messages (rule 2, ``--subscribe-latest``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from tests._redis import RedisCluster, RedisServer
from tidings.server.core import Discontinuity, Event, Limits, Message, Position, TopicCursor

from ..unit._support import ready_events
from .conftest import CACHE, ENGINES, TOPIC, Engines

T = TypeVar("T")
LIMITS = Limits(max_message_bytes=16, retention_messages=4, retention_bytes=24, topic_idle_ttl=60.0)
MAX_SUBSCRIPTIONS = 5


@dataclass
class Subscriber:
    """What the test knows about one subscription: its request, the model's cursor and all it received."""

    subscription: TopicCursor
    resume_at: int
    resume_page: int
    page: int
    next_at_start: int
    starts_at: int  # where a subscription without a position (N = 0) starts: rule 2's newest messages
    cursor: int
    pending: Discontinuity | None
    received: list[Event] = field(default_factory=list)


def _view(event: Event) -> object:
    return (event.sequence_page, event.sequence_number, event.value) if isinstance(event, Message) else event


class SequenceMachine(RuleBasedStateMachine):
    engine_kind = "memory"
    redis: RedisServer | RedisCluster | None = None

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.engines = Engines(self.engine_kind, self.redis)
        self.service = self.run(self.engines.make_service(LIMITS))
        self.old_pages: list[int] = []
        self.subscribers: list[Subscriber] = []
        self.published: dict[bytes, tuple[int, int]] = {}  # value -> (page, sequence number)
        self.counter = 0
        self._open_instance()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coroutine)

    def _open_instance(self) -> None:
        """Start a topic instance (as a first subscribe would) so the model knows its page."""
        with self.run(self.service.subscribe(CACHE, TOPIC)) as probe:
            self.page = probe.sequence_page
        assert self.page > 0
        assert all(self.page > old for old in self.old_pages)
        self.log: list[Message] = []  # every message of this instance, retained or not
        self.first = 1  # the oldest retained sequence number
        self.retained_bytes = 0

    @property
    def next(self) -> int:
        return len(self.log) + 1

    # --- rules ---------------------------------------------------------------------------------------------

    @rule(padding=st.integers(0, 12))
    def publish(self, padding: int) -> None:
        value = str(self.counter).encode() + b"." * padding
        self.counter += 1

        message = self.run(self.service.publish(CACHE, TOPIC, value))
        self.run(self.engines.settle(message))

        assert (message.sequence_page, message.sequence_number) == (self.page, self.next)
        self.log.append(message)
        self.published[value] = (self.page, message.sequence_number)
        self.retained_bytes += message.size
        while self.next - self.first > 1 and (
            self.next - self.first > LIMITS.retention_messages or self.retained_bytes > LIMITS.retention_bytes
        ):
            self.retained_bytes -= self.log[self.first - 1].size
            self.first += 1

    @precondition(lambda self: len(self.subscribers) < MAX_SUBSCRIPTIONS)
    @rule(data=st.data(), page_choice=st.sampled_from(["unknown", "current", "stale"]))
    def subscribe(self, data: st.DataObject, page_choice: str) -> None:
        resume_at = data.draw(st.integers(0, self.next + 3), label="N")
        if page_choice == "stale":
            resume_page = data.draw(st.sampled_from([*self.old_pages, 1]), label="stale P")
        else:
            resume_page = self.page if page_choice == "current" else 0
        latest = data.draw(st.integers(0, LIMITS.retention_messages + 2), label="latest")
        # The protocol's rules 2 to 5, written independently of the service.
        cursor, pending = max(self.first, self.next - latest), None
        if resume_at > 0:
            cursor = self.next
            if resume_page not in (0, self.page):
                cursor, pending = self.first, Discontinuity(resume_at - 1, self.first - 1, self.page)
            elif resume_at > self.next:
                pending = Discontinuity(resume_at - 1, self.next - 1, self.page)
            elif resume_at < self.first:
                cursor, pending = self.first, Discontinuity(resume_at - 1, self.first - 1, self.page)
            else:
                cursor = resume_at

        subscription = self.run(self.service.subscribe(CACHE, TOPIC, Position(resume_page, resume_at), latest=latest))

        assert subscription.sequence_page == self.page
        self.subscribers.append(
            Subscriber(subscription, resume_at, resume_page, self.page, self.next, cursor, cursor, pending)
        )

    @precondition(lambda self: self.subscribers)
    @rule(data=st.data())
    def read(self, data: st.DataObject) -> None:
        self._drain(data.draw(st.sampled_from(self.subscribers), label="subscriber"))

    @precondition(lambda self: self.subscribers)
    @rule(data=st.data())
    def close_subscription(self, data: st.DataObject) -> None:
        subscriber = data.draw(st.sampled_from(self.subscribers), label="subscriber")
        self._drain(subscriber)
        subscriber.subscription.close()
        self.subscribers.remove(subscriber)

    @rule()
    def retire_topic(self) -> None:
        for subscriber in self.subscribers:
            self._drain(subscriber)
            subscriber.subscription.close()
        self.subscribers.clear()

        retired = self.run(self.engines.expire(self.service))

        assert retired == 1
        self.old_pages.append(self.page)
        self._open_instance()

    # --- checks ---------------------------------------------------------------------------------------------

    def _drain(self, subscriber: Subscriber) -> None:
        """Read everything the subscription has now and compare it with the model."""
        expected: list[Event] = []
        if subscriber.pending is not None:
            expected.append(subscriber.pending)
            subscriber.pending = None
        if subscriber.cursor < self.first:  # Rule 6: fell behind the retention buffer.
            expected.append(Discontinuity(subscriber.cursor - 1, self.first - 1, self.page))
            subscriber.cursor = self.first
        expected += self.log[subscriber.cursor - 1 :]
        subscriber.cursor = self.next

        events = self.run(ready_events(subscriber.subscription))

        assert [_view(e) for e in events] == [_view(e) for e in expected]
        subscriber.received += events
        self._check_stream(subscriber)

    def _check_stream(self, subscriber: Subscriber) -> None:
        """The sequence rules on one subscriber's whole stream, without the model."""
        resume_at, resume_page = subscriber.resume_at, subscriber.resume_page
        same_page = resume_page in (0, subscriber.page)
        # The last sequence number the subscriber is known to have.
        known = resume_at - 1 if resume_at > 0 else subscriber.starts_at - 1
        after_discontinuity: Discontinuity | None = None
        for event in subscriber.received:
            if isinstance(event, Discontinuity):
                assert event.last_topic_sequence == known
                assert event.new_sequence_page == subscriber.page
                known, after_discontinuity = event.new_topic_sequence, event
                continue
            assert isinstance(event, Message)
            if after_discontinuity is not None:
                assert event.sequence_number == after_discontinuity.new_topic_sequence + 1
                assert event.sequence_page == after_discontinuity.new_sequence_page
            else:
                assert event.sequence_number == known + 1
                assert event.sequence_page == subscriber.page
            if same_page and resume_at <= subscriber.next_at_start:
                # Nothing older than N (or, without a position, than rule 2's newest messages) is delivered.
                assert event.sequence_number >= max(resume_at, subscriber.starts_at if resume_at == 0 else 1)
            # Everyone sees the same (page, sequence number) for the same value.
            assert self.published[event.value] == (event.sequence_page, event.sequence_number)  # type: ignore[index]
            known, after_discontinuity = event.sequence_number, None

    @invariant()
    def retention_is_bounded(self) -> None:
        assert self.next - self.first <= LIMITS.retention_messages
        assert self.retained_bytes <= LIMITS.retention_bytes or self.next - self.first == 1

    def teardown(self) -> None:
        try:
            for subscriber in self.subscribers:
                self._drain(subscriber)
                assert subscriber.subscription.next_sequence_number == self.next
                subscriber.subscription.close()
            assert self.service.subscription_count(CACHE) == 0
        finally:
            self.run(self.engines.close())
            self.loop.close()


@pytest.mark.parametrize("engine_kind", ENGINES)
def test_engine_sequences_follow_protocol_over_random_interleavings(
    engine_kind: str, request: pytest.FixtureRequest
) -> None:
    machine = type(
        f"SequenceMachine_{engine_kind}",
        (SequenceMachine,),
        {
            "engine_kind": engine_kind,
            "redis": request.getfixturevalue({"redis": "redis_server", "redis-cluster": "redis_cluster"}[engine_kind])
            if engine_kind != "memory"
            else None,
        },
    )
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=150 if engine_kind == "memory" else 40,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
