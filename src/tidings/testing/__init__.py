"""Run a real tidings server inside a test process: for your application's tests, offline.

``run_server()`` (a context manager; the server runs on a background thread, so blocking clients work in the
test) and ``run_server_async()`` (an async context manager; the server runs on the current loop) start a
server on a free loopback port with a fresh data directory and yield a `RunningServer` with its endpoint.
The pytest plugin (installed with tidings) offers the same as the ``tidings_server`` fixture.
"""

from tidings.testing._server import RunningServer, run_server, run_server_async

__all__ = ["RunningServer", "run_server", "run_server_async"]
