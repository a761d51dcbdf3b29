"""How the server's log looks: one line per record, as text for people or as JSON for log pipelines.

uvicorn's own records (``uvicorn.error``, whose INFO lines are start and stop chatter, not errors) are shown
as the HTTP transport's: under ``tidings.server.http``, their INFO demoted to DEBUG.
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


def configure_logging(level: str, log_format: LogFormat = "text", worker: int | None = None) -> None:
    """Log records of ``level`` and above to stderr, one line each, as ``log_format``; a ``--workers`` process
    says which ``worker`` it is on every line."""
    handler = logging.StreamHandler()
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
    show_uvicorn_as_transport()


def show_uvicorn_as_transport() -> None:
    """Install `UvicornAsTransport` on uvicorn's loggers (once)."""
    for name in _UVICORN_LOGGERS:
        uvicorn_logger = logging.getLogger(name)
        if not any(isinstance(f, UvicornAsTransport) for f in uvicorn_logger.filters):
            uvicorn_logger.addFilter(UvicornAsTransport())
