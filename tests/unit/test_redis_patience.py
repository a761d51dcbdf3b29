"""Timeouts on Redis's answers count the loop's running time, not this process's own stalls
(`redis_io._patience`): an answer that arrived during a stall is read, not timed out."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from tidings.server.redis_io._patience import Silence, responsive_wait


async def _answer_during_a_stall(wait: str) -> bytes:
    """Wait 0.4 s for one byte that the peer sends while this loop is stalled for 0.8 s (as by a full garbage
    collection): the byte is in the socket, unread, when the loop runs again."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        reader, writer = await asyncio.open_connection(sock=ours)

        def stall() -> None:
            theirs.send(b"!")
            time.sleep(0.8)

        asyncio.get_running_loop().call_later(0.05, stall)
        try:
            if wait == "asyncio":
                async with asyncio.timeout(0.4):  # as the pub/sub connection waited before
                    return await reader.readexactly(1)
            return await responsive_wait(reader.readexactly(1), 0.4)
        finally:
            writer.close()


async def test_an_answer_read_after_a_stall_of_this_process_is_not_a_timeout() -> None:
    assert await _answer_during_a_stall("responsive") == b"!"


async def test_a_plain_timeout_counts_the_stall() -> None:  # what the responsive wait is for
    with pytest.raises(TimeoutError):
        await _answer_during_a_stall("asyncio")


async def test_no_answer_times_out_after_the_timeout_and_cancels_the_wait() -> None:
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    started = time.monotonic()

    with pytest.raises(TimeoutError):
        await responsive_wait(never, 0.2)

    assert 0.19 <= time.monotonic() - started < 0.6
    assert never.cancelled()


def test_silence_counts_intervals_without_an_answer_and_restarts_at_one() -> None:
    silence = Silence()

    assert [silence.grew(0.5, answered=False) for _ in range(3)] == [0.5, 1.0, 1.5]
    assert silence.grew(0.5, answered=True) == 0.0
    assert silence.grew(0.5, answered=False) == 0.5
