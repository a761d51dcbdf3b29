"""Momento Local's test-admin API (``--test-admin-port``, with ``--fault-injection`` only).

``GET /block`` makes the gRPC port go silent, as Momento Local's does: open streams get nothing, not even
heartbeats or answers to keepalive pings, so SDKs detect a lost connection; new connections get no answer.
``GET /unblock`` restores it and subscriptions resume. The gRPC transport then listens on a loopback port of its
own behind a `DataPortRelay` on the configured port; the HTTP API's port is not affected.
"""

from __future__ import annotations

import logging

from tidings.server.process import host_port
from tidings.server.testadmin._api import TestAdminApi
from tidings.server.testadmin._relay import DataPortRelay

logger = logging.getLogger("tidings.server.testadmin")

# Where the gRPC transport listens when the relay stands in front of it.
UPSTREAM_HOST = "127.0.0.1"


class TestAdmin:
    """The relay in front of the gRPC transport and the API that blocks and unblocks it."""

    __test__ = False  # not a pytest test class, whatever its name

    def __init__(self, api_port: int) -> None:
        self.relay = DataPortRelay(UPSTREAM_HOST, 0)
        self._api = TestAdminApi({"/block": self._block, "/unblock": self._unblock})
        self._api_port = api_port
        self.api_port = 0

    async def start(self, host: str, data_port: int, transport_port: int) -> int:
        """Relay ``host:data_port`` to the transport (on ``transport_port`` of `UPSTREAM_HOST`) and serve the API
        on ``host`` and the API port; returns the bound data port. OSError naming the address if either cannot be
        bound."""
        self.relay.upstream = (UPSTREAM_HOST, transport_port)
        api_port = self._api_port
        try:
            bound = await self.relay.start(host, data_port)
        except OSError as error:
            raise OSError(f"cannot listen on {host_port(host, data_port)}: {error.strerror or error}") from None
        try:
            self.api_port = await self._api.start(host, api_port)
        except OSError as error:
            await self.relay.close()
            raise OSError(
                f"cannot serve --test-admin-port on {host_port(host, api_port)}: {error.strerror or error}"
            ) from None
        logger.info(
            "test-admin API at http://%s (GET /block silences the gRPC port, GET /unblock restores it)",
            host_port(host, self.api_port),
        )
        return bound

    def _block(self) -> str:
        if not self.relay.blocked:
            logger.info("test-admin: the gRPC port is blocked (GET /block)")
        self.relay.block()
        return "blocked"

    def _unblock(self) -> str:
        if self.relay.blocked:
            logger.info("test-admin: the gRPC port is unblocked (GET /unblock)")
        self.relay.unblock()
        return "unblocked"

    async def close(self) -> None:
        """Stop the API, then the relay (after the transport stopped, so its goodbyes reach the clients); nothing
        to do if it never started."""
        await self._api.close()
        await self.relay.close()


__all__ = ["UPSTREAM_HOST", "DataPortRelay", "TestAdmin", "TestAdminApi"]
