"""``h2``'s connection state machine as the transport uses it: bounded memory of closed streams, streams
counted without walking them all, and a header list limit that refuses a request rather than the connection."""

from __future__ import annotations

from typing import Any, Final

import h2.config
import h2.connection
import h2.settings

from tidings.server.grpc._h2._head import CountedTable
from tidings.server.grpc._h2._limits import MAX_DECODED_HEADER_LIST_SIZE

# h2 walks its streams to count them (and to forget closed ones) at most once per this many new streams, plus
# as many as were open at the last walk.
_WALK_SLACK: Final = 64


class StateMachine(h2.connection.H2Connection):
    """``h2``'s connection state machine, adapted to a server with many streams per connection.

    - It remembers fewer closed streams. ``h2`` keeps how each of the last ``MAX_CLOSED_STREAMS`` closed streams
      closed (so that a late frame on one it reset gets RST_STREAM, not a connection error). With its 65,536,
      every connection that carries that many calls holds several MiB for it: measured, the server's RSS grew by
      4.4 MiB over 40,000 streams of subscribe and publish churn on one connection, still growing. With 4,096,
      which covers the frames in flight of any call closed since, it stayed flat after the first 8,000 streams.
    - It counts open streams cheaply. ``h2`` checks ``max_concurrent_streams`` at each new stream by walking all
      of its streams (forgetting closed ones as it goes): each publish on a connection that carries 2,500
      subscriptions walked 2,500 streams. Here the number of streams ``h2`` holds stands for the count while it
      is below the limit and the walk mark (it is an upper bound of the open ones); ``h2`` walks only past
      either, and the mark is then twice what it kept, so a walk is paid for by the new streams that led to it.
    - Its HPACK decoder's dynamic table counts its changes (`_head.CountedTable`), for the cache of decoded
      header blocks (`_head.HeadCache`).
    - Its HPACK decoder keeps `MAX_DECODED_HEADER_LIST_SIZE` as its limit (past it the connection is closed),
      where ``h2`` would lower it to the ``MAX_HEADER_LIST_SIZE`` advertised once the client acknowledges it: a
      request between the two is refused on its own stream (`_calls`), not with its connection.
    """

    MAX_CLOSED_STREAMS = 4096

    def __init__(
        self, config: h2.config.H2Configuration, settings: dict[h2.settings.SettingCodes, int] | None = None
    ) -> None:
        super().__init__(config)
        if settings is not None:  # the SETTINGS this side sends; h2's defaults otherwise
            self.local_settings = h2.settings.Settings(client=False, initial_values=settings)
        self.decoder.max_header_list_size = MAX_DECODED_HEADER_LIST_SIZE
        self.header_table = self.decoder.header_table = CountedTable()
        self._stream_limit = self.local_settings.max_concurrent_streams
        self._walk_at = min(_WALK_SLACK, self._stream_limit)

    @property
    def open_inbound_streams(self) -> int:
        """Open streams the client started: the streams held while below the limit and the walk mark, else
        counted exactly by ``h2`` (which forgets the closed ones)."""
        held = len(self.streams)
        if held < self._walk_at:
            return held
        count = super().open_inbound_streams
        self._walk_at = min(2 * len(self.streams) + _WALK_SLACK, self._stream_limit)
        return count

    def queued(self) -> bytes:
        """What ``h2`` has queued to send (``data_to_send``), with no copy and no new buffer when it is nothing
        (the case on the hot paths, which ask before each frame they add, so that ``h2``'s frames keep their
        place: its ``data_to_send`` copies its buffer and makes a new one each time)."""
        return self.data_to_send() if self._data_to_send else b""

    def _local_settings_acked(self) -> dict[Any, Any]:
        changes = super()._local_settings_acked()
        self.decoder.max_header_list_size = MAX_DECODED_HEADER_LIST_SIZE
        return changes
