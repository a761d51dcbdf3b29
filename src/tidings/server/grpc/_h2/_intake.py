"""`RequestIntake`: the requests of one connection that are still arriving, and what they hold of its budget."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tidings.server.grpc._h2._limits import HeaderRate

if TYPE_CHECKING:
    from tidings.server.grpc._h2._call import H2Call


class RequestIntake:
    """Calls whose request (headers, then body) is not whole yet, oldest first, and what they hold.

    A call is `admit`-ted at its HEADERS with a cost (its decoded headers and a fixed overhead), within the
    ``header_budget`` all of them may hold; its body grows with each DATA frame (`receive`), within
    ``body_budget``, which the connection makes its flow-control window (a client cannot send more ahead);
    `release` forgets it when the request is whole, answered or reset, returning the body bytes it had received,
    for the connection to give back to that window. Sans IO: the connection decides what to answer.

    It also keeps the connection's `HeaderRate` of header bytes decoded for nothing (`decoded_for_nothing`).
    """

    __slots__ = ("_header_rate", "_pending", "body_budget", "body_held", "header_budget", "header_held")

    def __init__(self, body_budget: int, header_budget: int, header_rate: HeaderRate) -> None:
        self.body_budget = body_budget
        self.header_budget = header_budget
        self.body_held = 0
        self.header_held = 0
        self._pending: dict[int, H2Call] = {}
        self._header_rate = header_rate

    def __len__(self) -> int:
        return len(self._pending)

    def get(self, stream_id: int) -> H2Call | None:
        """The call of ``stream_id`` if its request is still arriving."""
        return self._pending.get(stream_id)

    def admit(self, call: H2Call, cost: int, now: float) -> bool:
        """Take ``call`` in at its HEADERS (``now``), holding ``cost`` bytes; False if that would exceed the
        header budget."""
        if self.header_held + cost > self.header_budget:
            return False
        call.cost = cost
        call.received_at = now
        self.header_held += cost
        self._pending[call.stream_id] = call
        return True

    def receive(self, call: H2Call, data: bytes, size: int) -> None:
        """Add a DATA frame (``size`` flow-controlled bytes, padding included) to ``call``'s body."""
        call.body += data
        call.received += size
        self.body_held += size

    def release(self, call: H2Call) -> int:
        """Forget ``call`` (its request is whole, answered or reset): the body bytes it had received, which the
        client may send again (0 if it was not arriving)."""
        if self._pending.pop(call.stream_id, None) is None:
            return 0
        received = call.received
        self.header_held -= call.cost
        self.body_held -= received
        call.received = 0
        if call.body:
            call.body = bytearray()
        return received

    def expired(self, received_before: float, limit: int) -> list[H2Call]:
        """The calls whose HEADERS arrived before ``received_before``, oldest first, at most ``limit``."""
        expired: list[H2Call] = []
        for call in self._pending.values():  # in order of arrival
            if call.received_at >= received_before or len(expired) == limit:
                break
            expired.append(call)
        return expired

    def decoded_for_nothing(self, size: int) -> bool:
        """Charge ``size`` decoded header bytes that serve no call; False when the connection is over its rate."""
        return self._header_rate.charge(size)

    def clear(self) -> None:
        """Forget every call (the connection is gone)."""
        self._pending.clear()
        self.header_held = self.body_held = 0
