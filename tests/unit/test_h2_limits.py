"""The h2 transport's bounds as pure pieces: the header-bytes token bucket, rate-limited notices, the request
budget, connections per address, and the state machine's count of open streams."""

from __future__ import annotations

import logging

import h2.config
import h2.connection
import h2.exceptions
import h2.settings
import pytest

from tests.unit._support import grpc_request_headers
from tidings.server.connections import ConnectionsPerAddress, Notices
from tidings.server.grpc._h2._limits import (
    HeaderRate,
    header_list_size,
    request_budget,
)
from tidings.server.grpc._h2._state import StateMachine


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_header_rate_allows_its_burst_then_its_rate() -> None:
    clock = Clock()
    rate = HeaderRate(rate=1000, burst=4000, clock=clock)

    within_burst = [rate.charge(1000) for _ in range(4)]
    over = rate.charge(1)
    clock.now += 0.5  # 500 bytes accrue
    after_half_a_second = (rate.charge(500), rate.charge(1))

    assert within_burst == [True] * 4
    assert not over
    assert after_half_a_second == (True, False)


def test_header_rate_refills_only_up_to_its_burst() -> None:
    clock = Clock()
    rate = HeaderRate(rate=1000, burst=4000, clock=clock)
    assert rate.charge(4000)

    clock.now += 3600  # an hour idle

    assert rate.charge(4000)
    assert not rate.charge(1)


def test_notices_log_one_line_per_kind_per_interval_with_the_count(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    notices = Notices(logging.getLogger("test.notices"), interval=60, clock=clock)

    with caplog.at_level(logging.WARNING, "test.notices"):
        for _ in range(1000):
            notices.seen("refused a stream from %s", "10.0.0.1")
        notices.seen("another kind")
        clock.now += 60
        notices.seen("refused a stream from %s", "10.0.0.2")

    assert [record.getMessage() for record in caplog.records] == [
        "refused a stream from 10.0.0.1 (1 such since the last line)",
        "another kind (1 such since the last line)",
        "refused a stream from 10.0.0.2 (1000 such since the last line)",
    ]


def test_request_budget_holds_a_few_of_the_largest_requests() -> None:
    largest = 4096 + 65536  # --max-message-size 4 KiB and the envelope

    budget = request_budget(largest)

    assert budget == 4 * (largest + 5)


def test_header_list_size_counts_names_values_and_32_per_field() -> None:
    assert header_list_size([(b":path", b"/a/b"), (b"te", b"trailers")]) == (5 + 4 + 32) + (2 + 8 + 32)


def test_connections_per_address_admits_up_to_the_limit_per_address() -> None:
    counts = ConnectionsPerAddress(2)

    admitted = [counts.admit("10.0.0.1") for _ in range(3)]
    other = counts.admit("10.0.0.2")
    counts.release("10.0.0.1")
    again = counts.admit("10.0.0.1")

    assert admitted == [True, True, False]
    assert other
    assert again
    assert counts.refused == 1
    assert (counts.open_from("10.0.0.1"), counts.open_from("10.0.0.2")) == (2, 1)


def test_connections_per_address_forgets_an_address_without_connections() -> None:
    counts = ConnectionsPerAddress(5)
    for number in range(1000):
        counts.admit(f"10.0.{number // 256}.{number % 256}")
    for number in range(1000):
        counts.release(f"10.0.{number // 256}.{number % 256}")

    assert len(counts) == 0


_REQUEST = grpc_request_headers("Subscribe")


class _HostileClient(h2.connection.H2Connection):
    """A client that ignores the server's stream limit."""

    @property
    def open_outbound_streams(self) -> int:
        return 0


def _connected(limit: int) -> tuple[h2.connection.H2Connection, StateMachine]:
    client = _HostileClient(h2.config.H2Configuration(client_side=True, header_encoding=None))
    server = StateMachine(
        h2.config.H2Configuration(client_side=False, header_encoding=None),
        {h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: limit},
    )
    client.initiate_connection()
    server.initiate_connection()
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())
    return client, server


def test_state_machine_refuses_a_stream_past_its_limit() -> None:
    client, server = _connected(limit=100)
    for _ in range(100):  # subscriptions: open until the server ends them
        client.send_headers(client.get_next_available_stream_id(), _REQUEST, end_stream=True)
    server.receive_data(client.data_to_send())
    client.send_headers(client.get_next_available_stream_id(), _REQUEST, end_stream=True)

    with pytest.raises(h2.exceptions.TooManyStreamsError):
        server.receive_data(client.data_to_send())


def test_state_machine_walks_its_streams_a_logarithmic_number_of_times(monkeypatch: pytest.MonkeyPatch) -> None:
    walks = 0
    walk = h2.connection.H2Connection._open_streams

    def counted(self: h2.connection.H2Connection, remainder: int) -> int:
        nonlocal walks
        walks += 1
        return walk(self, remainder)

    monkeypatch.setattr(h2.connection.H2Connection, "_open_streams", counted)
    client, server = _connected(limit=10_000)
    for _ in range(5000):
        client.send_headers(client.get_next_available_stream_id(), _REQUEST, end_stream=True)

    server.receive_data(client.data_to_send())

    # h2 alone walks all open streams at each new one: 5,000 walks, 12.5 million streams visited.
    assert len(server.streams) == 5000
    assert walks <= 8
