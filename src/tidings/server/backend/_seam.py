"""What the composition root asks of a backend, whichever it is, and the log its refresh loops share."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self

from tidings.server.auth import SECRET_ENV, KeyStore, load_or_create_secret
from tidings.server.core import Engine, FailureLog, Store, Unavailable
from tidings.server.store import DataDirectoryError
from tidings.server.webhooks import Leases, WebhookRegistry, WebhookStore

logger = logging.getLogger("tidings.server")


class ServerStore(Store, KeyStore, WebhookStore, Protocol):
    """Everything a server keeps durably: caches and the page floor, API keys and revoked tokens, webhooks."""


class RefreshLog:
    """The outcome of the loops that refresh API keys and webhooks from the store.

    Both fail together while Redis is unreachable: one outage, a few lines (not one a loop); it ends when neither
    fails, so one failing alone while the other works is one outage too.
    """

    def __init__(self) -> None:
        self._log = FailureLog(logger, "refreshing API keys and webhooks from the store")

    def failed(self, error: Exception, loop: str) -> None:
        """The refresh ``loop`` failed (it retries): Redis unreachable is logged as an outage, anything else with
        its traceback when the outage starts."""
        if isinstance(error, Unavailable):
            self._log.failed(f"{error.message}; retrying", by=loop)
        else:
            self._log.failed(f"{type(error).__name__}: {error}; retrying", exc_info=error, by=loop)

    def succeeded(self, loop: str) -> None:
        """The refresh ``loop`` worked."""
        self._log.succeeded(by=loop)


class Backend(Protocol):
    """Where topics and state live, chosen once (`open_backend`): an engine, a store and webhook leases, opened
    together by ``async with`` and closed in reverse order."""

    @property
    def name(self) -> str:
        """What holds the topics, for the log: ``memory`` or ``redis at host:port``."""
        ...

    @property
    def engine(self) -> Engine:
        """The engine (once opened)."""
        ...

    @property
    def store(self) -> ServerStore:
        """The store (once opened)."""
        ...

    @property
    def leases(self) -> Leases:
        """Which webhooks this server delivers (once opened)."""
        ...

    async def signing_secret(self) -> bytes:
        """The secret that signs and verifies disposable tokens (`DataDirectoryError` if its file is unusable)."""
        ...

    async def watch_webhooks(self, registry: WebhookRegistry, interval: float, log: RefreshLog) -> None:
        """Keep ``registry`` what the store holds when other servers change it, every ``interval`` seconds,
        until cancelled; returns at once where no other server can."""
        ...

    async def open_store(self, *, create: bool = True) -> ServerStore:
        """The store alone, on connections of its own, for a command that manages keys (the caller closes it);
        ``create`` False refuses a data directory without one. Raises `Unavailable` if Redis is unreachable."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


def secret_from_file(data_dir: Path) -> bytes:
    """``$TIDINGS_SECRET_KEY``, else ``secret.key`` in ``data_dir`` (created on first use); a file without a
    usable secret is the data directory's fault (`DataDirectoryError`), a bad variable its own (`ValueError`)."""
    try:
        return load_or_create_secret(data_dir)
    except ValueError as error:
        if os.environ.get(SECRET_ENV):
            raise
        raise DataDirectoryError(data_dir, str(error)) from None


def secret_is_configured() -> bool:
    """Whether ``$TIDINGS_SECRET_KEY`` sets the signing secret (then no store is asked for it)."""
    return bool(os.environ.get(SECRET_ENV))
