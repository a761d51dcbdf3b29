"""How the server's log looks: one line per record, as text for people or as JSON for log pipelines.

uvicorn's own records (``uvicorn.error``, whose INFO lines are start and stop chatter, not errors) are shown
as the HTTP transport's: under ``tidings.server.http``, their INFO demoted to DEBUG.

Other libraries' records below WARNING are dropped whatever the level: hpack dumps every header it decodes at
DEBUG (``authorization`` included), and grpc and redis are as chatty. (Webhooks are sent by our own client, which
logs no URL: a webhook's query string may hold a credential.) ``--log-third-party`` lets them through, for
debugging a library, with a warning that the log may then hold credentials.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Final, Literal

LogFormat = Literal["text", "json"]
LOG_FORMATS: Final = ("text", "json")
TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
HTTP_LOGGER: Final = "tidings.server.http"
_UVICORN_LOGGERS: Final = ("uvicorn.error", "uvicorn")
OWN_LOGGER: Final = "tidings"
# Libraries known to log headers, URLs or bodies below WARNING: set to WARNING, so their records are not even
# made (hpack's dumps cost CPU on every request). `OwnRecordsBelowWarning` drops any other library's.
THIRD_PARTY_LOGGERS: Final = ("hpack", "h2", "grpc", "redis", "uvicorn.access", "asyncio")
THIRD_PARTY_WARNING: Final = (
    "--log-third-party: other libraries' records are logged too (hpack, h2, grpc, redis, uvicorn); "
    "they may contain credentials (authorization headers): do not keep or share this log"
)


class JsonFormatter(logging.Formatter):
    """A record as one JSON object: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message`` and, for a
    logged exception, ``exception`` (its traceback as text)."""

    def __init__(self, worker: int | None = None) -> None:
        super().__init__()
        self.worker = worker

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self.worker is not None:
            document["worker"] = self.worker
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            document["exception"] = record.exc_text
        return json.dumps(document, ensure_ascii=False)


class OwnRecordsBelowWarning(logging.Filter):
    """Lets through tidings' records, and other libraries' only from WARNING up (their DEBUG and INFO may print
    credentials)."""

    def filter(self, record: logging.LogRecord) -> bool:
        name = record.name
        return record.levelno >= logging.WARNING or name == OWN_LOGGER or name.startswith(OWN_LOGGER + ".")


class UvicornAsTransport(logging.Filter):
    """Shows uvicorn's records as the HTTP transport's, INFO demoted to DEBUG (and dropped unless enabled)."""

    def filter(self, record: logging.LogRecord) -> bool:
        transport = logging.getLogger(HTTP_LOGGER)
        if record.levelno == logging.INFO:
            if not transport.isEnabledFor(logging.DEBUG):
                return False
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        record.name = HTTP_LOGGER
        return True


def configure_logging(
    level: str, log_format: LogFormat = "text", worker: int | None = None, *, third_party: bool = False
) -> None:
    """Log records of ``level`` and above to stderr, one line each, as ``log_format``; a ``--workers`` process
    says which ``worker`` it is on every line. Other libraries' records below WARNING only with ``third_party``
    (which warns, once, that they may hold credentials)."""
    handler = logging.StreamHandler()
    if not third_party:
        handler.addFilter(OwnRecordsBelowWarning())
    if log_format == "json":
        handler.setFormatter(JsonFormatter(worker))
    else:
        tag = "" if worker is None else f"[worker {worker}]"
        handler.setFormatter(logging.Formatter(TEXT_FORMAT.replace("%(name)s:", f"%(name)s{tag}:")))
    root = logging.getLogger()
    for existing in root.handlers[:]:
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in THIRD_PARTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if third_party else logging.WARNING)
    show_uvicorn_as_transport()
    if third_party and worker is None:  # a worker's supervisor said it already
        logging.getLogger("tidings.server").warning("%s", THIRD_PARTY_WARNING)


def logging_configuration() -> tuple[str, LogFormat, bool]:
    """The level, format and third-party choice `configure_logging` set up, for a process to set up the same
    (the ``--workers`` supervisor, for its workers)."""
    root = logging.getLogger()
    log_format: LogFormat = "json" if any(isinstance(h.formatter, JsonFormatter) for h in root.handlers) else "text"
    own_only = any(isinstance(f, OwnRecordsBelowWarning) for h in root.handlers for f in h.filters)
    return logging.getLevelName(root.level), log_format, not own_only


def show_uvicorn_as_transport() -> None:
    """Install `UvicornAsTransport` on uvicorn's loggers (once)."""
    for name in _UVICORN_LOGGERS:
        uvicorn_logger = logging.getLogger(name)
        if not any(isinstance(f, UvicornAsTransport) for f in uvicorn_logger.filters):
            uvicorn_logger.addFilter(UvicornAsTransport())
