"""The HTTP transport: Momento's HTTP API for topics, Server-Sent Events, the web console, operations."""

from tidings.server.http._app import build_app
from tidings.server.http._connections import ConnectionLimits
from tidings.server.http._server import HttpServer

__all__ = ["ConnectionLimits", "HttpServer", "build_app"]
