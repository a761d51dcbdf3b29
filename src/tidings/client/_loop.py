"""`LoopThread`: a private event loop on a daemon thread, so blocking APIs can be built on async ones.

The sync clients own one each and run every call of their async client on it; ``tidings.testing`` runs a
server on one. Lifecycle: running from construction, ``close()`` stops the loop, cancels and awaits what is
left on it, shuts down its default executor, closes it and joins the thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

Result = TypeVar("Result")


class LoopThread:
    """An asyncio event loop running on its own daemon thread until `close`."""

    def __init__(self, name: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._closing = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop (use it only through `submit`, `run` or ``call_soon_threadsafe``)."""
        return self._loop

    @property
    def is_closed(self) -> bool:
        """Whether `close` was called."""
        return self._closing

    def submit(self, coroutine: Coroutine[Any, Any, Result]) -> concurrent.futures.Future[Result]:
        """Schedule ``coroutine`` on the loop; raises RuntimeError once the loop is closing."""
        with self._lock:
            if self._closing:
                coroutine.close()
                raise RuntimeError("the client is closed")
            return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    def run(self, coroutine: Coroutine[Any, Any, Result]) -> Result:
        """Run ``coroutine`` on the loop and wait for its result (from any thread but the loop's own)."""
        if threading.current_thread() is self._thread:
            coroutine.close()
            raise RuntimeError("a blocking call cannot run on the client's own event loop thread")
        return self.submit(coroutine).result()

    def close(self) -> None:
        """Stop the loop, cancel what is still scheduled on it, and join the thread. Idempotent."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
            self._loop.call_soon_threadsafe(self._loop.stop)
        if threading.current_thread() is not self._thread:
            self._thread.join()

    def _run(self) -> None:
        loop = self._loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
            leftovers = asyncio.all_tasks(loop)
            for task in leftovers:
                task.cancel()
            if leftovers:
                loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
