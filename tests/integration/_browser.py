"""What the browser tests share: Debian's Chromium under Playwright (headless; never downloaded: ``make test``
installs it) and a page's backend served by uvicorn on the test's own loop."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest
import uvicorn
from playwright.async_api import Browser, async_playwright
from starlette.types import ASGIApp

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
TIMEOUT_MS = 10_000
ARTIFACTS = Path(__file__).parents[1] / "artifacts"


def require_chromium() -> None:
    """Fail the test, naming the command to run, when Debian's Chromium is not installed."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `apt-get update && apt-get install -y chromium` (or `make test`)")


@asynccontextmanager
async def chromium(*args: str) -> AsyncIterator[Browser]:
    """A headless Chromium with ``args`` beside the usual ones."""
    require_chromium()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=[*CHROMIUM_ARGS, *args])
        try:
            yield browser
        finally:
            await browser.close()


@contextmanager
def listening_socket() -> Iterator[socket.socket]:
    """A loopback socket already listening, so its address (a page's origin) is known before its server runs."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    try:
        yield sock
    finally:
        sock.close()


@asynccontextmanager
async def serve(app: ASGIApp, sock: socket.socket) -> AsyncIterator[str]:
    """``app`` served on ``sock`` by uvicorn on the running loop until the block ends; yields its base URL."""
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="off"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await serving
