"""The web console's layout holds with the longest names the server accepts (255 bytes)."""

from __future__ import annotations

import asyncio

import pytest
from playwright.async_api import Browser, Page, expect

from tests.integration._browser import ARTIFACTS
from tests.integration._server import ServerProcess
from tests.integration.http.test_console import _open_console, _subscribe, browser

__all__ = ["browser"]  # the fixture shared with test_console.py

# 255 bytes without a place to break a line: the worst case for a card's width.
LONG_CACHE = "c" * 255
LONG_TOPIC = "t" * 255


async def _page_width_overflow(page: Page) -> int:
    """How many CSS pixels the document is wider than the viewport (0: no horizontal scrolling)."""
    overflow = await page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    return int(overflow)


@pytest.mark.parametrize(("width", "height"), [(1280, 800), (390, 844)], ids=["desktop", "phone"])
async def test_console_keeps_the_page_width_with_255_byte_names(
    browser: Browser, server: ServerProcess, width: int, height: int
) -> None:
    assert len(LONG_CACHE.encode()) == len(LONG_TOPIC.encode()) == 255
    page = await _open_console(browser, server, width, height)
    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    cache = LONG_CACHE[:-1] + ("d" if width > 760 else "p")  # one cache per viewport, still 255 bytes

    await page.fill("#new-cache", cache)
    await page.click("#create-cache button")
    entry = page.locator(f'#cache-list li[data-cache="{cache}"]')
    await expect(entry).to_be_visible()
    await _subscribe(page, cache, LONG_TOPIC)
    await page.fill("#value", LONG_TOPIC)
    await page.click("#publish-button")
    await expect(page.locator("#events li.item").first).to_be_visible()

    overflow = await _page_width_overflow(page)
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=ARTIFACTS / f"console-long-names-{width}.png", full_page=True)
    full_name = await entry.locator(".pick").get_attribute("title")
    await entry.locator(".danger").click()
    await expect(entry).to_have_count(0)
    overflow_after_delete = await _page_width_overflow(page)
    await page.close()

    assert overflow == 0
    assert overflow_after_delete == 0
    assert full_name == cache  # cut with an ellipsis on screen, whole on hover
