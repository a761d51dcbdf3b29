"""What a ``tidings server`` process does around its server: its log, its open-files limit and listening
addresses, giving freed memory back, and (``--workers``) supervising worker processes."""

from tidings.server.process._addresses import host_port, refuse_busy_port
from tidings.server.process._logs import (
    LOG_FORMATS,
    THIRD_PARTY_LOGGERS,
    LogFormat,
    configure_logging,
    logging_configuration,
    show_uvicorn_as_transport,
)
from tidings.server.process._memory import freeze_startup_heap, return_freed_memory
from tidings.server.process._open_files import (
    DEFAULT_MAX_CONNECTIONS,
    connections_per_transport,
    max_connections_for,
    open_files_limit,
    raise_open_files_limit,
)
from tidings.server.process._workers import exit_status, name_process, supervise

__all__ = [
    "DEFAULT_MAX_CONNECTIONS",
    "LOG_FORMATS",
    "THIRD_PARTY_LOGGERS",
    "LogFormat",
    "configure_logging",
    "connections_per_transport",
    "exit_status",
    "freeze_startup_heap",
    "host_port",
    "logging_configuration",
    "max_connections_for",
    "name_process",
    "open_files_limit",
    "raise_open_files_limit",
    "refuse_busy_port",
    "return_freed_memory",
    "show_uvicorn_as_transport",
    "supervise",
]
