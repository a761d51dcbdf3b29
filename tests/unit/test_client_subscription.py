"""`SubscriptionAsync` without sockets: scripted streams stand in for the server's Subscribe streams."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import grpc
import grpc.aio
import pytest
from momento_wire_types import cachepubsub_pb2 as pb

from tidings import ErrorCode, TopicSubscriptionItem
from tidings.client._callbacks import Callbacks
from tidings.client._resubscribe import BACKOFF_CAP, full_jitter
from tidings.client._subscription import SubscriptionAsync

PAGE = 1_700_000_000_000_000
NEXT_PAGE = PAGE + 1
_CANCELLED = object()

Step = pb._SubscriptionItem | BaseException | object


def heartbeat() -> pb._SubscriptionItem:
    return pb._SubscriptionItem(heartbeat=pb._Heartbeat())


def item(number: int, page: int = PAGE, text: str | None = None, binary: bytes | None = None) -> pb._SubscriptionItem:
    value = pb._TopicValue(binary=binary) if binary is not None else pb._TopicValue(text=text or f"m{number}")
    return pb._SubscriptionItem(item=pb._TopicItem(topic_sequence_number=number, sequence_page=page, value=value))


def discontinuity(last: int, new: int, page: int) -> pb._SubscriptionItem:
    return pb._SubscriptionItem(
        discontinuity=pb._Discontinuity(last_topic_sequence=last, new_topic_sequence=new, new_sequence_page=page)
    )


def rpc_error(code: grpc.StatusCode, details: str = "", err: str | None = None) -> grpc.aio.AioRpcError:
    trailing = grpc.aio.Metadata(("err", err)) if err else grpc.aio.Metadata()
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), trailing, details, None)


class FakeStream:
    """One Subscribe stream: ``read`` returns the fed steps in order, then waits; ``cancel`` ends it."""

    def __init__(self, resume_at: int, page: int) -> None:
        self.request = (resume_at, page)
        self.cancelled = False
        self._steps: asyncio.Queue[Step] = asyncio.Queue()

    def feed(self, *steps: Step) -> None:
        for step in steps:
            self._steps.put_nowait(step)

    async def read(self) -> Any:
        if self.cancelled:
            raise asyncio.CancelledError
        try:
            step = await self._steps.get()
        except asyncio.CancelledError:
            self.cancel()  # as grpc.aio does when the reading task is cancelled
            raise
        if step is _CANCELLED:
            raise asyncio.CancelledError
        if isinstance(step, BaseException):
            raise step
        return step

    def cancel(self) -> bool:
        self.cancelled = True
        self._steps.put_nowait(_CANCELLED)
        return True


class FakeServer:
    """Opens `FakeStream` s, each fed with the next script (a heartbeat alone once the scripts run out)."""

    def __init__(self, *scripts: Iterable[Step]) -> None:
        self._scripts = deque(list(script) for script in scripts)
        self.streams: list[FakeStream] = []
        self.opened = asyncio.Event()

    def open(self, resume_at: int, page: int) -> FakeStream:
        stream = FakeStream(resume_at, page)
        stream.feed(*(self._scripts.popleft() if self._scripts else [heartbeat()]))
        self.streams.append(stream)
        self.opened.set()
        return stream

    @property
    def requests(self) -> list[tuple[int, int]]:
        return [stream.request for stream in self.streams]


async def start(
    server: FakeServer,
    *,
    resume_at: int = 0,
    page: int = 0,
    heartbeats: bool = False,
    discontinuities: bool = False,
    backoff: Callable[[int], float] = lambda attempt: 0.0,
) -> SubscriptionAsync:
    subscription = SubscriptionAsync(
        server.open,
        "cache",
        "topic",
        resume_at_sequence_number=resume_at,
        resume_at_sequence_page=page,
        include_heartbeats=heartbeats,
        include_discontinuities=discontinuities,
        backoff=backoff,
    )
    await subscription.start(5.0)
    return subscription


async def take(subscription: SubscriptionAsync, count: int) -> list[Any]:
    return [await asyncio.wait_for(subscription.__anext__(), 5) for _ in range(count)]


def Text(number: int, page: int = PAGE, value: str | None = None) -> TopicSubscriptionItem.Text:
    return TopicSubscriptionItem.Text(value or f"m{number}", number, page)


async def test_client_subscription_yields_items_and_hides_heartbeats_by_default() -> None:
    server = FakeServer([heartbeat(), item(1), heartbeat(), item(2, binary=b"\x00\x01")])
    subscription = await start(server)

    received = await take(subscription, 2)

    assert received == [Text(1), TopicSubscriptionItem.Binary(b"\x00\x01", 2, PAGE)]
    assert (subscription.resume_at_sequence_number, subscription.sequence_page) == (3, PAGE)


async def test_client_subscription_yields_the_first_heartbeat_when_asked() -> None:
    server = FakeServer([heartbeat(), item(1), heartbeat()])
    subscription = await start(server, heartbeats=True)

    received = await take(subscription, 3)

    assert received == [TopicSubscriptionItem.Heartbeat(), Text(1), TopicSubscriptionItem.Heartbeat()]


async def test_client_subscription_reports_the_publisher_token_id() -> None:
    message = item(1)
    message.item.publisher_id = "token-7"
    subscription = await start(FakeServer([heartbeat(), message]))

    (received,) = await take(subscription, 1)

    assert received == TopicSubscriptionItem.Text("m1", 1, PAGE, "token-7")


@pytest.mark.parametrize(
    "code",
    [
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.CANCELLED,  # reset by the server or a proxy: the subscription did not cancel it
    ],
    ids=lambda code: code.name,
)
async def test_client_subscription_resumes_after_retryable_failure_without_duplicates(code: grpc.StatusCode) -> None:
    server = FakeServer(
        [heartbeat(), item(1), item(2), rpc_error(code)],
        [heartbeat(), item(2), item(1), item(3)],  # a server may repeat; the client must not
    )
    subscription = await start(server)

    received = await take(subscription, 3)

    assert received == [Text(1), Text(2), Text(3)]
    assert server.requests == [(0, 0), (3, PAGE)]
    statistics = subscription.statistics()
    assert (statistics.resubscriptions, statistics.dropped_duplicates) == (1, 2)


async def test_client_subscription_resumes_after_a_stream_ends_without_status() -> None:
    server = FakeServer([heartbeat(), item(1), grpc.aio.EOF], [heartbeat(), item(2)])  # type: ignore[attr-defined]
    subscription = await start(server)

    received = await take(subscription, 2)

    assert received == [Text(1), Text(2)]
    assert server.requests == [(0, 0), (2, PAGE)]


async def test_client_subscription_resumes_from_the_requested_point_before_any_item() -> None:
    server = FakeServer([heartbeat(), rpc_error(grpc.StatusCode.UNAVAILABLE)], [heartbeat(), item(5)])
    subscription = await start(server, resume_at=5, page=PAGE)

    received = await take(subscription, 1)

    assert received == [Text(5)]
    assert server.requests == [(5, PAGE), (5, PAGE)]


async def test_client_subscription_drops_items_before_the_requested_resume_point() -> None:
    server = FakeServer([heartbeat(), item(3), item(4), item(5)])
    subscription = await start(server, resume_at=5, page=PAGE)

    received = await take(subscription, 1)

    assert received == [Text(5)]


async def test_client_subscription_resumes_after_the_discontinuity_point() -> None:
    server = FakeServer(
        [heartbeat(), discontinuity(4, 0, NEXT_PAGE), item(1, NEXT_PAGE), rpc_error(grpc.StatusCode.UNAVAILABLE)],
        [heartbeat(), item(2, NEXT_PAGE)],
    )
    subscription = await start(server, resume_at=5, page=PAGE, discontinuities=True)

    received = await take(subscription, 3)

    assert received == [
        TopicSubscriptionItem.Discontinuity(4, 0, NEXT_PAGE),
        Text(1, NEXT_PAGE),
        Text(2, NEXT_PAGE),
    ]
    assert server.requests == [(5, PAGE), (2, NEXT_PAGE)]


async def test_client_subscription_hides_discontinuities_by_default_but_follows_them() -> None:
    server = FakeServer([heartbeat(), item(1), discontinuity(1, 9, PAGE), item(10)])
    subscription = await start(server)

    received = await take(subscription, 2)

    assert received == [Text(1), Text(10)]
    assert subscription.resume_at_sequence_number == 11


@pytest.mark.parametrize(
    ("second", "expected"),
    [
        pytest.param(item(1, NEXT_PAGE), TopicSubscriptionItem.Discontinuity(1, 0, NEXT_PAGE), id="new-page"),
        pytest.param(item(5), TopicSubscriptionItem.Discontinuity(1, 4, PAGE), id="gap-in-page"),
    ],
)
async def test_client_subscription_reports_a_skip_the_server_did_not_announce(
    second: pb._SubscriptionItem, expected: TopicSubscriptionItem.Discontinuity
) -> None:
    subscription = await start(FakeServer([heartbeat(), item(1), second]), discontinuities=True)

    received = await take(subscription, 3)

    assert received[1] == expected
    assert received[2].sequence_number == second.item.topic_sequence_number


@pytest.mark.parametrize(
    ("code", "error_code"),
    [
        (grpc.StatusCode.NOT_FOUND, ErrorCode.CACHE_NOT_FOUND),
        (grpc.StatusCode.PERMISSION_DENIED, ErrorCode.PERMISSION_DENIED),
        (grpc.StatusCode.UNAUTHENTICATED, ErrorCode.AUTHENTICATION),
        (grpc.StatusCode.INVALID_ARGUMENT, ErrorCode.INVALID_ARGUMENT),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, ErrorCode.LIMIT_EXCEEDED),
    ],
    ids=lambda value: value.name,
)
async def test_client_subscription_ends_with_one_error_on_a_final_failure(
    code: grpc.StatusCode, error_code: ErrorCode
) -> None:
    server = FakeServer([heartbeat(), item(1), rpc_error(code, "no")])
    subscription = await start(server)

    received = [entry async for entry in subscription]

    assert received[0] == Text(1)
    assert isinstance(received[1], TopicSubscriptionItem.Error)
    assert received[1].error_code is error_code
    assert len(received) == 2
    assert len(server.streams) == 1
    assert subscription.is_closed


async def test_client_subscription_unsubscribe_ends_a_pending_read_with_cancelled() -> None:
    server = FakeServer([heartbeat()])
    subscription = await start(server)
    reading = asyncio.create_task(subscription.__anext__())
    await asyncio.sleep(0)  # let it start reading

    subscription.unsubscribe()
    final = await asyncio.wait_for(reading, 5)

    assert isinstance(final, TopicSubscriptionItem.Error)
    assert final.error_code is ErrorCode.CANCELLED
    assert server.streams[0].cancelled
    with pytest.raises(StopAsyncIteration):
        await subscription.__anext__()


async def test_client_subscription_unsubscribe_from_another_thread() -> None:
    server = FakeServer([heartbeat()])
    subscription = await start(server)
    reading = asyncio.create_task(subscription.__anext__())
    await asyncio.sleep(0)

    thread = threading.Thread(target=subscription.unsubscribe)
    thread.start()
    final = await asyncio.wait_for(reading, 5)
    thread.join()

    assert isinstance(final, TopicSubscriptionItem.Error)
    assert final.error_code is ErrorCode.CANCELLED


async def test_client_subscription_unsubscribe_cuts_a_backoff_short() -> None:
    server = FakeServer([heartbeat(), rpc_error(grpc.StatusCode.UNAVAILABLE)])
    backing_off = asyncio.Event()

    def backoff(attempt: int) -> float:
        backing_off.set()
        return 3600.0

    subscription = await start(server, backoff=backoff)
    reading = asyncio.create_task(subscription.__anext__())
    await asyncio.wait_for(backing_off.wait(), 5)

    subscription.unsubscribe()
    final = await asyncio.wait_for(reading, 5)

    assert isinstance(final, TopicSubscriptionItem.Error)
    assert final.error_code is ErrorCode.CANCELLED
    assert len(server.streams) == 1


async def test_client_subscription_unsubscribe_drops_what_was_not_yet_yielded() -> None:
    subscription = await start(FakeServer([heartbeat(), item(1)]), heartbeats=True)

    subscription.unsubscribe()
    received = [entry async for entry in subscription]

    assert [type(entry) for entry in received] == [TopicSubscriptionItem.Error]


async def test_client_subscription_resumes_after_the_reading_task_was_cancelled() -> None:
    server = FakeServer([heartbeat(), item(1)], [heartbeat(), item(1), item(2)])
    subscription = await start(server)
    assert await take(subscription, 1) == [Text(1)]

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(subscription.__anext__(), 0.01)
    received = await take(subscription, 1)

    assert received == [Text(2)]
    assert server.requests == [(0, 0), (2, PAGE)]


async def test_client_subscription_start_refuses_a_stream_without_a_first_heartbeat() -> None:
    subscription = SubscriptionAsync(
        FakeServer([item(1)]).open,
        "cache",
        "topic",
        resume_at_sequence_number=0,
        resume_at_sequence_page=0,
        include_heartbeats=False,
        include_discontinuities=False,
    )

    with pytest.raises(ConnectionError):
        await subscription.start(5.0)
    assert subscription.is_closed


async def test_client_subscription_start_raises_the_first_failure() -> None:
    server = FakeServer([rpc_error(grpc.StatusCode.NOT_FOUND, "cache not found")])

    with pytest.raises(grpc.aio.AioRpcError):
        await start(server)


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED], ids=lambda c: c.name)
async def test_client_subscription_start_retries_a_busy_or_restarting_server(code: grpc.StatusCode) -> None:
    server = FakeServer([rpc_error(code)], [rpc_error(code)], [heartbeat(), item(1)])

    subscription = await start(server)
    first = await anext(subscription)

    assert first == Text(1)
    assert len(server.streams) == 3
    assert server.streams[0].cancelled
    assert server.streams[1].cancelled


async def test_client_subscription_start_gives_up_with_the_last_error_at_its_timeout() -> None:
    server = FakeServer(*[[rpc_error(grpc.StatusCode.UNAVAILABLE, "busy")] for _ in range(1000)])
    subscription = SubscriptionAsync(
        server.open,
        "cache",
        "topic",
        resume_at_sequence_number=0,
        resume_at_sequence_page=0,
        include_heartbeats=False,
        include_discontinuities=False,
        backoff=lambda attempt: 0.01,
    )

    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await subscription.start(0.2)

    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    assert len(server.streams) > 1
    assert subscription.is_closed


async def test_client_subscription_cannot_be_iterated_while_delivering_to_callbacks() -> None:
    subscription = await start(FakeServer([heartbeat()]))
    subscription.deliver_to(Callbacks(on_item=print))

    with pytest.raises(RuntimeError, match="callbacks"):
        aiter(subscription)
    subscription.unsubscribe()
    await subscription.wait_delivered()


async def test_client_subscription_delivers_to_plain_and_async_callbacks_in_order(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = FakeServer([heartbeat(), item(1), item(2), discontinuity(2, 5, PAGE), item(6)])
    subscription = await start(server, heartbeats=True, discontinuities=True)
    received: list[object] = []
    done = asyncio.Event()

    def on_item(entry: object) -> None:
        received.append(entry)
        if len(received) == 2:
            raise ValueError("a failing callback does not stop delivery")
        if entry == Text(6):
            subscription.unsubscribe()

    async def on_error(entry: object) -> None:
        received.append(entry)
        done.set()

    subscription.deliver_to(Callbacks(on_item=on_item, on_discontinuity=received.append, on_error=on_error))
    await asyncio.wait_for(done.wait(), 5)
    await subscription.wait_delivered()

    assert received[:4] == [Text(1), Text(2), TopicSubscriptionItem.Discontinuity(2, 5, PAGE), Text(6)]
    assert isinstance(received[4], TopicSubscriptionItem.Error)
    assert received[4].error_code is ErrorCode.CANCELLED
    assert any(record.levelno == logging.ERROR for record in caplog.records)


def test_client_subscription_backoff_is_full_jitter_up_to_the_cap() -> None:
    delays = [full_jitter(attempt) for attempt in range(40) for _ in range(20)]

    assert all(0.0 <= delay <= BACKOFF_CAP for delay in delays)
    assert max(full_jitter(0) for _ in range(100)) <= 0.1
    assert max(delays) > BACKOFF_CAP / 2


async def test_client_subscription_ends_with_an_error_when_no_stream_can_be_opened() -> None:
    server = FakeServer([heartbeat(), rpc_error(grpc.StatusCode.UNAVAILABLE)])
    subscription = await start(server)

    def broken(resume_at: int, page: int) -> FakeStream:
        raise RuntimeError("the channel is closed")

    subscription._open_stream = broken
    received = [entry async for entry in subscription]

    assert len(received) == 1
    assert isinstance(received[0], TopicSubscriptionItem.Error)
    assert received[0].error_code is ErrorCode.UNKNOWN
    assert "closed" in received[0].message
