"""The engine seam itself (`tidings.server.core.Engine`), over every engine: what the core relies on when it calls
an engine directly, below the service's rules."""

from __future__ import annotations

import asyncio

from tidings.server.core import Message, PageClock, Position, TopicLog

from .conftest import CACHE, TOPIC, WALL_START, Engines

SETTLE_TIMEOUT = 10.0


class _Topic:
    """The core's side of one topic instance, as an engine sees it."""

    log: TopicLog

    def __init__(self) -> None:
        self.arrived = asyncio.Event()

    def messages_arrived(self) -> None:
        self.arrived.set()

    def page_changed(self) -> None:
        self.arrived.set()

    async def holds(self, message: Message) -> None:
        """Return once the log holds ``message`` (at once for the memory engine)."""
        log = self.log
        while (log.sequence_page, log.next_sequence_number) <= (message.sequence_page, message.sequence_number):
            self.arrived.clear()
            await asyncio.wait_for(self.arrived.wait(), SETTLE_TIMEOUT)


async def test_engine_seam_publish_numbers_into_the_followed_log(engines: Engines) -> None:
    # Arrange
    engine = await engines.make_engine()
    topic = _Topic()
    topic.log = await engine.open_topic(CACHE, TOPIC, PageClock(0, lambda: WALL_START), topic)
    await engine.follow(topic, Position(0, 0))

    # Act
    published = [await engine.publish(topic, value, "publisher", 1, 0.0) for value in "ab"]
    await topic.holds(published[-1])

    # Assert
    assert [(m.sequence_number, m.value, m.publisher_id) for m in published] == [
        (1, "a", "publisher"),
        (2, "b", "publisher"),
    ]
    assert {m.sequence_page for m in published} == {topic.log.sequence_page}
    assert [m.value for m in topic.log.read_from(1, 10)] == ["a", "b"]
    assert (await engine.status()).healthy


async def test_engine_seam_late_retirement_of_an_old_instance_leaves_the_reopened_one_alone(
    engines: Engines,
) -> None:
    # Arrange: the topic was opened again before the engine retired its old instance (a deleted cache's topics
    # are retired after the core let them go).
    engine = await engines.make_engine()
    pages = PageClock(0, lambda: WALL_START)
    old, new = _Topic(), _Topic()
    old.log = await engine.open_topic(CACHE, TOPIC, pages, old)
    new.log = await engine.open_topic(CACHE, TOPIC, pages, new)
    await engine.follow(new, Position(0, 0))

    # Act
    old.log.forget()
    await engine.retire_topic(old)
    message = await engine.publish(new, "after", "publisher", 5, 0.0)
    await new.holds(message)

    # Assert
    assert [m.value for m in new.log.read_from(message.sequence_number, 10)] == ["after"]
