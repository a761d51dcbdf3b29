"""The h2 transport's output, sans I/O: one message (an idle stream's heartbeat) queued as one DATA frame with the
same window checks and accounting as a batch; a client's ``h2`` reads exactly what was sent."""

from __future__ import annotations

import asyncio
import contextlib

import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest

from tests.unit._support import grpc_request_headers
from tidings.server.grpc._h2._call import CallConnection, H2Call
from tidings.server.grpc._h2._head import RequestHead
from tidings.server.grpc._h2._output import H2Output
from tidings.server.grpc._h2._state import StateMachine
from tidings.server.grpc._pubsub import HEARTBEAT_BYTES

FRAME = 5 + len(HEARTBEAT_BYTES)  # a heartbeat's flow-controlled bytes: gRPC prefix and message


class RecordingTransport:
    """The part of an asyncio transport the output writes to."""

    def __init__(self) -> None:
        self.written = bytearray()

    def write(self, data: bytes) -> None:
        self.written += data


class Opened:
    """A client's ``h2`` and the server's output with one Subscribe call whose response headers and first
    heartbeat went out (the client read them)."""

    def __init__(self, stream_window: int) -> None:
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self.client = h2.connection.H2Connection(config)
        self.client.local_settings = h2.settings.Settings(
            client=True, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: stream_window}
        )
        self.server = StateMachine(h2.config.H2Configuration(client_side=False, header_encoding=None))
        self.output = H2Output(self.server, body_budget=1 << 20, stream_window=65_535)
        self.transport = RecordingTransport()
        self.output._transport = self.transport  # type: ignore[assignment]
        connection: CallConnection = self.output  # type: ignore[assignment]
        self.client.initiate_connection()
        self.server.initiate_connection()
        self.server.receive_data(self.client.data_to_send())
        self.client.receive_data(self.server.data_to_send())
        self.server.receive_data(self.client.data_to_send())  # the client's SETTINGS ack
        stream_id = self.client.get_next_available_stream_id()
        self.client.send_headers(stream_id, grpc_request_headers("Subscribe"), end_stream=True)
        self.server.receive_data(self.client.data_to_send())
        self.call = H2Call(connection, stream_id, RequestHead(grpc_request_headers("Subscribe")))

    async def start(self) -> None:
        await self.output.send_message(self.call, HEARTBEAT_BYTES)
        await self.received()

    async def received(self) -> list[h2.events.Event]:
        """What the client's ``h2`` reads of what the output wrote since (after its flush)."""
        await asyncio.sleep(0)
        written = bytes(self.transport.written)
        self.transport.written.clear()
        return self.client.receive_data(written)

    def windows(self) -> tuple[int, int]:
        """The server's send windows: the stream's, the connection's."""
        stream = self.call.h2_stream
        assert stream is not None
        return stream.outbound_flow_control_window, self.server.outbound_flow_control_window


async def test_h2_output_writes_one_heartbeat_as_one_data_frame_with_the_windows_accounted() -> None:
    # Arrange
    opened = Opened(stream_window=65_535)
    await opened.start()
    before = opened.windows()

    # Act
    written = opened.call.try_write([HEARTBEAT_BYTES])
    events = await opened.received()

    # Assert: one DATA frame of prefix and message, read by h2 as such, and both windows down by it.
    assert written is True
    data = [event for event in events if isinstance(event, h2.events.DataReceived)]
    assert [(event.stream_id, event.data) for event in data] == [(opened.call.stream_id, b"\0\0\0\0\x02" + b"\x1a\0")]
    assert data[0].flow_controlled_length == FRAME
    assert opened.windows() == (before[0] - FRAME, before[1] - FRAME)


async def test_h2_output_refuses_a_heartbeat_the_stream_window_cannot_take_and_queues_nothing() -> None:
    # Arrange: room for the first heartbeat and one more.
    opened = Opened(stream_window=2 * FRAME + 1)
    await opened.start()

    # Act
    first = opened.call.try_write([HEARTBEAT_BYTES])
    windows = opened.windows()
    second = opened.call.try_write([HEARTBEAT_BYTES])
    events = await opened.received()

    # Assert
    assert (first, second) == (True, False)
    assert opened.windows() == windows == (1, 65_535 - 2 * FRAME)
    assert sum(isinstance(event, h2.events.DataReceived) for event in events) == 1


@pytest.mark.parametrize("batch", [1, 3], ids=["one", "batch"])
async def test_h2_output_refuses_while_the_socket_buffer_is_full(batch: int) -> None:
    # Arrange
    opened = Opened(stream_window=65_535)
    await opened.start()
    opened.output.pause_writing()

    # Act
    paused = opened.call.try_write([HEARTBEAT_BYTES] * batch)
    opened.output.resume_writing()
    resumed = opened.call.try_write([HEARTBEAT_BYTES] * batch)
    events = await opened.received()

    # Assert
    assert (paused, resumed) == (False, True)
    assert sum(isinstance(event, h2.events.DataReceived) for event in events) == batch


async def test_h2_output_first_message_written_without_waiting_sends_the_response_headers_first() -> None:
    # Arrange: a Subscribe call that has sent nothing yet (its preamble is next).
    opened = Opened(stream_window=65_535)

    # Act
    written = opened.call.try_write([HEARTBEAT_BYTES])
    events = await opened.received()

    # Assert: HEADERS, then the message, read by the client's h2 in that order; nothing waited.
    assert written is True
    assert opened.call.headers_sent
    kinds = [type(event) for event in events if not isinstance(event, h2.events.RemoteSettingsChanged)]
    assert kinds[:2] == [h2.events.ResponseReceived, h2.events.DataReceived]
    headers = dict(next(event for event in events if isinstance(event, h2.events.ResponseReceived)).headers)
    assert headers[b":status"] == b"200"
    assert [event.data for event in events if isinstance(event, h2.events.DataReceived)] == [b"\0\0\0\0\x02\x1a\0"]


async def test_h2_output_first_message_the_window_refuses_leaves_the_headers_sent_once() -> None:
    # Arrange: a stream window too small for the preamble.
    opened = Opened(stream_window=FRAME - 1)

    # Act: refused now; the waiting path then sends what the window allows, without new HEADERS.
    written = opened.call.try_write([HEARTBEAT_BYTES])
    first = await opened.received()
    waiting = asyncio.ensure_future(opened.output.send_message(opened.call, HEARTBEAT_BYTES))
    await asyncio.sleep(0)  # it runs until it waits for the window
    second = await opened.received()

    # Assert: the headers went out at the next flush although the message waited; never twice.
    assert written is False
    assert [type(event) for event in first if isinstance(event, h2.events.ResponseReceived)] == [
        h2.events.ResponseReceived
    ]
    assert not any(isinstance(event, h2.events.ResponseReceived) for event in second)
    assert sum(len(event.data) for event in second if isinstance(event, h2.events.DataReceived)) == FRAME - 1
    assert not waiting.done()  # the last byte waits for the client's WINDOW_UPDATE
    waiting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await waiting
