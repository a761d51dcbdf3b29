"""The Redis engine's wire pieces: live-message and stream-entry decoding, RESP packing, the pipelined link."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests._redis import RedisServer
from tidings.server.core import Unavailable
from tidings.server.engine._redis_scripts import TopicKeys, decode_entry, decode_live, entry_sequence_number
from tidings.server.redis_io._link import RedisLink, pack_command
from tidings.server.redis_io._shards import connection_factory


def _live(seq: int, page: int, value: str | bytes, publisher_id: str) -> bytes:
    """What the publish script announces (written here from its Lua, independently of the decoder)."""
    kind, raw = (b"t", value.encode()) if isinstance(value, str) else (b"b", value)
    pid = publisher_id.encode()
    return b"%d:%d:%s%d:%s%s" % (seq, page, kind, len(pid), pid, raw)


@given(
    seq=st.integers(1, 2**53),
    page=st.integers(1, 2**53),
    value=st.one_of(st.text(min_size=1), st.binary(min_size=1)),
    publisher_id=st.text(max_size=64),
)
def test_decode_live_reads_what_the_script_announces(
    seq: int, page: int, value: str | bytes, publisher_id: str
) -> None:
    # Arrange
    try:
        data = _live(seq, page, value, publisher_id)
    except UnicodeEncodeError:  # lone surrogates are refused before publishing
        return

    # Act
    decoded = decode_live(data)

    # Assert
    size = len(value.encode() if isinstance(value, str) else value)
    assert decoded == (page, seq, value, publisher_id, size)


def test_decode_entry_and_sequence_number_of_a_stream_entry() -> None:
    # Act
    text = decode_entry([b"v", "héllo".encode(), b"k", b"t", b"i", b"tok:1"])
    binary = decode_entry([b"v", b"\x00\xff", b"k", b"b", b"i", b""])

    # Assert
    assert text == ("héllo", "tok:1")
    assert binary == (b"\x00\xff", "")
    assert entry_sequence_number(b"12345-0") == 12345


def test_topic_keys_share_one_slot_and_keep_names_apart() -> None:
    # Act
    keys = TopicKeys.of("p:", "a:b", "c")
    other = TopicKeys.of("p:", "a", "b:c")

    # Assert
    assert keys.meta != other.meta
    assert len({keys.meta[:-1], keys.stream[:-1], keys.channel[:-1], keys.last_page[:-1]}) == 1


def test_pack_command_is_resp_bulk_strings() -> None:
    # Act
    packed = pack_command((b"SET", "ké", 12, 1.5))

    # Assert
    assert packed == b"*4\r\n$3\r\nSET\r\n$3\r\nk\xc3\xa9\r\n$2\r\n12\r\n$3\r\n1.5\r\n"


async def test_link_pipelines_calls_and_matches_replies_in_order(redis_server: RedisServer) -> None:
    # Arrange
    link = RedisLink(connection_factory(redis_server.url))

    # Act
    try:
        replies = await asyncio.gather(*(link.call(b"ECHO", str(i)) for i in range(500)))
        with pytest.raises(Exception, match="unknown command"):
            await link.call(b"NO-SUCH-COMMAND")
        after_error = await link.call(b"ECHO", "still")
    finally:
        await link.close()

    # Assert
    assert replies == [str(i).encode() for i in range(500)]
    assert after_error == b"still"
    assert link.stats.round_trip.count == 502


async def test_link_fails_fast_when_redis_is_unreachable(tmp_path: object) -> None:
    # Arrange: a port nothing listens on
    server = RedisServer(tmp_path).start()  # type: ignore[arg-type]
    url = server.url
    server.stop()
    link = RedisLink(connection_factory(url))

    # Act / Assert
    try:
        with pytest.raises(Unavailable):
            await link.call(b"PING")
        with pytest.raises(Unavailable):  # within the retry interval: no new connect attempt
            await link.call(b"PING")
    finally:
        await link.close()
    assert link.stats.errors == 1
