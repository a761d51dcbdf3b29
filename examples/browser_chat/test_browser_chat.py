"""The chat example in Debian's Chromium (Playwright, headless) against a real tidings server over gRPC-web.

Two pages chat and see each other's name on each message; a spectator's subscribe-only token cannot post (the
page says so); a reloaded page shows the room again without a message twice. The page's bundle is built with
esbuild from the repository's npm install, as ``python browser_chat.py`` builds it.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from browser_chat import build_bundle, create_app
from playwright.async_api import Browser, Locator, Page, expect

from tests.integration._browser import ARTIFACTS, TIMEOUT_MS, chromium, listening_socket, serve
from tests.integration._server import ServerProcess
from tidings import AuthClientAsync

CACHE, TOPIC = "chat", "lobby"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bundle(tmp_path_factory.mktemp("bundle") / "chat.bundle.js")


@pytest.fixture
def backend_socket() -> Iterator[socket.socket]:
    """The backend's listening socket, bound first: tidings must name its origin in ``--cors-origins``."""
    with listening_socket() as sock:
        yield sock


@pytest.fixture
def tidings(tmp_path: Path, backend_socket: socket.socket) -> Iterator[ServerProcess]:
    origin = f"http://127.0.0.1:{backend_socket.getsockname()[1]}"
    server = ServerProcess(tmp_path / "data", ("--create-cache", CACHE, "--cors-origins", origin)).start()
    yield server
    server.stop()


@pytest.fixture
async def backend(tidings: ServerProcess, backend_socket: socket.socket, bundle: Path) -> AsyncIterator[str]:
    """The example's backend on the test's loop, minting tokens from the test server (anonymous on loopback)."""
    async with AuthClientAsync(tidings.endpoint) as auth:
        app = create_app(auth, cache=CACHE, topic=TOPIC, web_endpoint=tidings.http_url, bundle=bundle)
        async with serve(app, backend_socket) as url:
            yield url


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as browser:
        yield browser


async def _join(browser: Browser, url: str, name: str, *, read_only: bool = False) -> Page:
    page = await (await browser.new_context()).new_page()
    page.set_default_timeout(TIMEOUT_MS)
    await page.goto(url + "/")
    await page.fill("#name", name)
    if read_only:
        await page.check("#read-only")
    await page.click("#join button")
    await expect(page.locator('#room[data-ready="true"]')).to_be_attached(timeout=TIMEOUT_MS)
    return page


async def _say(page: Page, text: str) -> None:
    await page.fill("#text", text)
    await page.click("#send button")


def _message(page: Page, author: str, text: str) -> Locator:
    return page.locator("#messages li", has=page.locator(".author", has_text=author)).filter(has_text=text)


async def test_two_pages_chat_a_spectator_cannot_post_and_a_reload_repeats_nothing(
    backend: str, browser: Browser
) -> None:
    ada = await _join(browser, backend, "ada")
    bob = await _join(browser, backend, "bob")

    await _say(ada, "hello from ada")
    await expect(_message(bob, "ada", "hello from ada")).to_have_count(1, timeout=TIMEOUT_MS)
    await _say(bob, "hi ada, bob here")
    await expect(_message(ada, "bob", "hi ada, bob here")).to_have_count(1, timeout=TIMEOUT_MS)
    await expect(_message(ada, "ada", "hello from ada")).to_have_count(1, timeout=TIMEOUT_MS)

    carol = await _join(browser, backend, "carol", read_only=True)
    await _say(carol, "can I speak?")
    await expect(carol.locator("#send-error")).to_contain_text("not allowed to publish", timeout=TIMEOUT_MS)
    await expect(_message(carol, "bob", "hi ada, bob here")).to_have_count(1, timeout=TIMEOUT_MS)

    await ada.reload()
    await expect(ada.locator('#room[data-ready="true"]')).to_be_attached(timeout=TIMEOUT_MS)
    await _say(bob, "welcome back")
    await expect(_message(ada, "bob", "welcome back")).to_have_count(1, timeout=TIMEOUT_MS)
    texts = await ada.locator("#messages li .text").all_inner_texts()
    assert texts == ["hello from ada", "hi ada, bob here", "welcome back"]
    assert await _message(bob, "carol", "can I speak?").count() == 0
    ARTIFACTS.mkdir(exist_ok=True)
    await ada.screenshot(path=ARTIFACTS / "browser-chat.png", full_page=True)
    await carol.screenshot(path=ARTIFACTS / "browser-chat-spectator.png", full_page=True)
