"""The h2 transport's connection state machine forgets old closed streams: a long-lived connection that
carries many calls (every publish is a stream) does not grow with them."""

from __future__ import annotations

import h2.config
import h2.connection
import pytest

from tests.unit._support import grpc_request_headers
from tidings.server.grpc._h2._connection import StateMachine

_REQUEST = grpc_request_headers("Publish")
_CALLS = StateMachine.MAX_CLOSED_STREAMS + 2_000


def _closed_streams_kept_after_calls(server: h2.connection.H2Connection, count: int) -> int:
    """Run ``count`` calls (each a stream the client opens and ends, the server answers and ends); how many
    closed streams ``server`` remembers afterwards (h2's bookkeeping, one record per stream)."""
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    client.initiate_connection()
    server.initiate_connection()
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    for _ in range(count):
        stream_id = client.get_next_available_stream_id()
        client.send_headers(stream_id, _REQUEST, end_stream=True)
        server.receive_data(client.data_to_send())
        server.send_headers(stream_id, [(b":status", b"200")], end_stream=True)
        client.receive_data(server.data_to_send())
    return len(server._closed_streams)


@pytest.mark.parametrize(
    ("state_machine", "kept"),
    [(StateMachine, StateMachine.MAX_CLOSED_STREAMS), (h2.connection.H2Connection, _CALLS - 1)],
    ids=["transport", "plain-h2"],
)
def test_a_connection_remembers_a_bounded_number_of_closed_streams(
    state_machine: type[h2.connection.H2Connection], kept: int
) -> None:
    server = state_machine(h2.config.H2Configuration(client_side=False, header_encoding=None))

    # The transport keeps the last 4,096; plain h2 keeps every one up to 65,536 (about 7 MiB per connection).
    assert _closed_streams_kept_after_calls(server, _CALLS) == kept
