"""The test-admin relay's two sides (``server/testadmin/_relay.py``) over fake transports (no sockets): what it
holds while blocked or while the other side cannot take more, and that it is sent on, in order, never dropped."""

from __future__ import annotations

from tidings.server.testadmin._relay import DataPortRelay, _Side

from ._support import RecordingTransport


def _relayed() -> tuple[DataPortRelay, _Side, RecordingTransport, _Side, RecordingTransport]:
    """A relay with one connection through it: the client's side and the transport's (upstream) side, connected
    to each other as `DataPortRelay` connects them."""
    relay = DataPortRelay("127.0.0.1", 1)
    client, upstream = _Side(relay), _Side(relay)
    client_transport, upstream_transport = RecordingTransport(), RecordingTransport()
    client.connection_made(client_transport)
    upstream.connection_made(upstream_transport)
    client.peer, upstream.peer = upstream, client
    client.refresh()
    upstream.refresh()
    return relay, client, client_transport, upstream, upstream_transport


def test_relay_side_copies_what_it_reads_to_its_peer() -> None:
    _, client, client_transport, upstream, upstream_transport = _relayed()

    client.data_received(b"request")
    upstream.data_received(b"answer")

    assert (bytes(upstream_transport.written), bytes(client_transport.written)) == (b"request", b"answer")
    assert client_transport.reading
    assert upstream_transport.reading


def test_relay_block_stops_reading_both_ways_and_holds_a_read_already_under_way() -> None:
    relay, client, client_transport, upstream, upstream_transport = _relayed()

    relay.block()
    stopped = (client_transport.reading, upstream_transport.reading)
    client.data_received(b"one read ")  # uvloop may deliver a read that was under way
    upstream.data_received(b"heartbeat")
    while_blocked = (bytes(upstream_transport.written), bytes(client_transport.written))
    relay.unblock()
    client.data_received(b"then more")

    assert stopped == (False, False)
    assert while_blocked == (b"", b"")
    assert bytes(upstream_transport.written) == b"one read then more"
    assert bytes(client_transport.written) == b"heartbeat"
    assert (client_transport.reading, upstream_transport.reading) == (True, True)


def test_relay_stops_reading_a_side_whose_peer_cannot_take_more_and_sends_on_when_it_can() -> None:
    _, client, client_transport, upstream, upstream_transport = _relayed()

    upstream.pause_writing()  # the transport's socket buffer is full: stop reading from the client
    paused = client_transport.reading
    client.data_received(b"held ")
    client.data_received(b"in order")
    held = bytes(upstream_transport.written)
    upstream.data_received(b"the other way still flows")
    upstream.resume_writing()

    assert paused is False
    assert held == b""
    assert bytes(upstream_transport.written) == b"held in order"
    assert bytes(client_transport.written) == b"the other way still flows"
    assert client_transport.reading


def test_relay_side_closes_its_peer_when_it_is_lost() -> None:
    relay, client, client_transport, _, upstream_transport = _relayed()

    client.connection_lost(None)

    assert upstream_transport.closing
    assert not client_transport.closing
    assert client not in relay.sides
