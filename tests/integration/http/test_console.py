"""The web console in Debian's Chromium (Playwright, headless): caches, live stream, publish, resume."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable

import grpc.aio
import httpx
import pytest
from momento_wire_types import cachepubsub_pb2_grpc
from playwright.async_api import Browser, Page, expect

from tests.integration._browser import ARTIFACTS, TIMEOUT_MS, chromium
from tests.integration._server import ServerProcess
from tests.integration._wire import open_subscription, publish, read_items
from tidings.server.auth import TokenSigner
from tidings.server.core import TopicGrant, TopicPermission

StartServer = Callable[..., ServerProcess]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """A headless Chromium."""
    async with chromium() as browser:
        yield browser


async def _open_console(browser: Browser, server: ServerProcess, width: int = 1280, height: int = 800) -> Page:
    page = await browser.new_page(viewport={"width": width, "height": height})
    page.set_default_timeout(TIMEOUT_MS)
    expect.set_options(timeout=TIMEOUT_MS)
    await page.goto(server.http_url + "/")
    return page


async def _subscribe(page: Page, cache: str, topic: str) -> None:
    await page.locator(f'#cache-list li[data-cache="{cache}"] .pick').click()
    await page.fill("#topic", topic)
    await page.click("#subscribe-button")
    await expect(page.locator("#events li.heartbeat").first).to_be_visible()  # the stream is open


async def test_console_lists_caches_and_shows_a_message_published_over_grpc(
    browser: Browser, server: ServerProcess, cache: str
) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    for name, (width, height) in {"console": (1280, 800), "console-phone": (390, 844)}.items():
        page = await _open_console(browser, server, width, height)
        topic = f"news-{name}"
        await _subscribe(page, cache, topic)
        async with grpc.aio.insecure_channel(server.endpoint) as channel:
            stub = cachepubsub_pb2_grpc.PubsubStub(channel)
            await publish(stub, cache, topic, "hello from gRPC")
            await publish(stub, cache, topic, b"\x00\x01\x02")

        first = page.locator('#events li.item[data-seq="1"]')
        await expect(first).to_contain_text("#1")
        await expect(first).to_contain_text("hello from gRPC")
        await expect(page.locator('#events li.item[data-seq="2"]')).to_contain_text("AAEC")
        await expect(page.locator("#count-items")).to_have_text("2")
        await page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)
        await page.close()


async def test_console_publishes_text_and_binary_to_a_grpc_subscriber(
    browser: Browser, server: ServerProcess, cache: str
) -> None:
    page = await _open_console(browser, server)
    await page.fill("#cache", cache)
    await page.fill("#topic", "from-page")
    async with grpc.aio.insecure_channel(server.endpoint) as channel:
        call = await open_subscription(cachepubsub_pb2_grpc.PubsubStub(channel), cache, "from-page")

        await page.fill("#value", "hello from the page")
        await page.click("#publish-button")
        await expect(page.locator("#publish-status")).to_contain_text("Published")
        await page.check('input[name="kind"][value="binary"]')
        await page.fill("#value", base64.b64encode(b"\xfe\xff").decode())
        await page.click("#publish-button")
        text, binary = await read_items(call, 2)
        call.cancel()

    assert text.value.text == "hello from the page"
    assert binary.value.binary == b"\xfe\xff"


async def test_console_creates_and_deletes_a_cache(browser: Browser, server: ServerProcess) -> None:
    page = await _open_console(browser, server)
    name = f"made-in-console-{id(page)}"
    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))

    await page.fill("#new-cache", name)
    await page.click("#create-cache button")
    entry = page.locator(f'#cache-list li[data-cache="{name}"]')
    await expect(entry).to_be_visible()
    await entry.locator(".danger").click()

    await expect(entry).to_have_count(0)
    await expect(page.locator("#caches-status")).to_contain_text(f"Deleted {name}")


async def test_console_lists_creates_and_deletes_webhooks(browser: Browser, server: ServerProcess, cache: str) -> None:
    page = await _open_console(browser, server)
    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await page.locator(f'#cache-list li[data-cache="{cache}"] .pick').click()
    await expect(page.locator("#webhook-list")).to_contain_text(f"No webhooks in {cache}")

    await page.fill("#webhook-name", "orders-hook")
    await page.fill("#webhook-topic", "orders")
    await page.fill("#webhook-url", "https://example.test/orders")
    await page.click("#create-webhook button")
    entry = page.locator('#webhook-list li[data-webhook="orders-hook"]')
    await expect(entry).to_contain_text("orders → https://example.test/orders")
    await expect(page.locator("#webhooks-status")).to_contain_text("Signing secret: ")
    async with httpx.AsyncClient(base_url=server.http_url) as client:
        listed = (await client.get(f"/webhooks/{cache}")).json()
    await entry.locator(".danger").click()

    await expect(entry).to_have_count(0)
    await expect(page.locator("#webhooks-status")).to_contain_text("Deleted orders-hook")
    assert listed == {"webhooks": [{"name": "orders-hook", "topic": "orders", "url": "https://example.test/orders"}]}


async def test_event_source_resumes_after_a_server_restart_with_a_discontinuity(
    browser: Browser, start_server: StartServer
) -> None:
    server = start_server("--create-cache", "restarts")
    page = await _open_console(browser, server)
    await _subscribe(page, "restarts", "t")
    async with grpc.aio.insecure_channel(server.endpoint) as channel:
        await publish(cachepubsub_pb2_grpc.PubsubStub(channel), "restarts", "t", "before restart")
    await expect(page.locator('#events li.item[data-seq="1"]')).to_contain_text("before restart")
    old_page = await page.locator('#events li.item[data-seq="1"]').get_attribute("data-page")

    await asyncio.get_running_loop().run_in_executor(None, server.restart)
    async with grpc.aio.insecure_channel(server.endpoint) as channel:
        await publish(cachepubsub_pb2_grpc.PubsubStub(channel), "restarts", "t", "after restart")

    after = page.locator("#events li.item", has_text="after restart")
    await expect(after).to_be_visible()
    gap = page.locator("#events li.discontinuity")
    await expect(gap).to_have_count(1)
    new_page = await after.get_attribute("data-page")
    assert await gap.get_attribute("data-page") == new_page
    assert int(new_page or 0) > int(old_page or 0)
    assert await after.get_attribute("data-seq") == "1"
    await expect(page.locator("#count-discontinuities")).to_have_text("1")
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=ARTIFACTS / "console-resumed.png", full_page=True)


async def test_console_sends_a_pasted_token_and_shows_why_a_stream_is_refused(
    browser: Browser, start_server: StartServer
) -> None:
    server = start_server("--require-auth", "--create-cache", "c")
    secret = (server.data_dir / "secret.key").read_text().strip().encode()
    token, _ = TokenSigner(secret).mint((TopicGrant(TopicPermission.READ_WRITE, cache_name="c"),), 300, "console-user")
    page = await _open_console(browser, server)
    await expect(page.locator("#caches-status")).to_contain_text("401 unauthenticated")
    await page.fill("#cache", "c")
    await page.fill("#topic", "t")
    await page.click("#subscribe-button")
    await expect(page.locator("#events li.notice", has_text="401 unauthenticated")).to_be_visible()

    await page.fill("#token", token)
    await page.click("#token-form button")
    await page.click("#subscribe-button")
    await expect(page.locator("#events li.heartbeat").first).to_be_visible()
    await page.fill("#value", "signed")
    await page.click("#publish-button")

    item = page.locator('#events li.item[data-seq="1"]')
    await expect(item).to_contain_text("signed")
    await expect(item).to_contain_text("token id console-user")
    assert await page.evaluate("localStorage.getItem('tidings.token')") == token
