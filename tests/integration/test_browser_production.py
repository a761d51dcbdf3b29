"""docs/browser.md's production set-up, proven on loopback: an unmodified web SDK with NO endpoint overrides.

Momento's web SDK takes the ``endpoint`` inside a token and calls ``https://web.cache.<endpoint>`` (and
``web.control.`` / ``web.token.``). Here tidings mints tokens naming ``tidings.test:<its HTTP port>``
(``--public-endpoint``), serves HTTPS with a certificate for those names from the test's own certificate
authority (``--tls-cert``/``--tls-key``), and answers for them (``--allowed-hosts``); Chromium resolves
``*.tidings.test`` to 127.0.0.1 (``--host-resolver-rules``) and trusts the authority's key
(``--ignore-certificate-errors-spki-list``, the stand-in for installing a CA in a test browser). The chat
example's page, given no endpoint overrides, then publishes and subscribes.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType

import pytest
from playwright.async_api import Browser, Page, expect

from tests.integration._browser import TIMEOUT_MS, chromium, listening_socket, serve
from tests.integration._server import ServerProcess
from tidings import AuthClientAsync

ROOT = Path(__file__).parents[2]
DOMAIN = "tidings.test"
NAMES = [f"{prefix}{DOMAIN}" for prefix in ("", "cache.", "control.", "token.", "web.cache.", "web.control.")]
NAMES.append(f"web.token.{DOMAIN}")
CACHE, TOPIC = "chat", "lobby"


def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "browser_chat_example", ROOT / "examples/browser_chat/browser_chat.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _openssl(*args: str) -> bytes:
    return subprocess.run(["openssl", *args], check=True, capture_output=True).stdout


def certificate_authority(directory: Path) -> tuple[Path, Path, Path]:
    """(CA certificate, server chain, server key): a CA of the test's own and a certificate for ``NAMES``."""
    ca_cert, ca_key = directory / "ca.pem", directory / "ca-key.pem"
    key, csr, cert, chain = (directory / name for name in ("key.pem", "server.csr", "server.pem", "chain.pem"))
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-keyout", str(ca_key), "-out",
        str(ca_cert), "-subj", "/CN=tidings test CA", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={DOMAIN}")
    extensions = directory / "server.ext"
    names = ",".join([*(f"DNS:{name}" for name in NAMES), "IP:127.0.0.1"])
    extensions.write_text(f"subjectAltName={names}\nextendedKeyUsage=serverAuth\n")
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key), "-CAcreateserial",
        "-days", "1", "-out", str(cert), "-extfile", str(extensions),
    )  # fmt: skip
    chain.write_bytes(cert.read_bytes() + ca_cert.read_bytes())
    return ca_cert, chain, key


def spki_hash(certificate: Path) -> str:
    """base64 SHA-256 of the certificate's public key, as ``--ignore-certificate-errors-spki-list`` takes it."""
    public_key = _openssl("x509", "-in", str(certificate), "-noout", "-pubkey")
    der = subprocess.run(
        ["openssl", "pkey", "-pubin", "-outform", "der"], input=public_key, check=True, capture_output=True
    ).stdout
    digest = subprocess.run(["openssl", "dgst", "-sha256", "-binary"], input=der, check=True, capture_output=True)
    return base64.b64encode(digest.stdout).decode()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def backend_socket() -> Iterator[socket.socket]:
    with listening_socket() as sock:
        yield sock


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path, Path]:
    return certificate_authority(tmp_path)


@pytest.fixture
def tidings(
    tmp_path: Path, backend_socket: socket.socket, tls_files: tuple[Path, Path, Path]
) -> Iterator[ServerProcess]:
    _, chain, key = tls_files
    http_port = _free_port()
    origin = f"http://127.0.0.1:{backend_socket.getsockname()[1]}"
    args = (
        "--create-cache", CACHE, "--cors-origins", origin, "--allowed-hosts", f"*.{DOMAIN}",
        "--public-endpoint", f"{DOMAIN}:{http_port}", "--tls-cert", str(chain), "--tls-key", str(key),
    )  # fmt: skip
    server = ServerProcess(tmp_path / "data", args, http_port=http_port).start()
    yield server
    server.stop()


@pytest.fixture
async def backend(
    tidings: ServerProcess, backend_socket: socket.socket, tls_files: tuple[Path, Path, Path], tmp_path: Path
) -> AsyncIterator[str]:
    """The chat example's backend with no web endpoint overrides: the page uses the tokens' own endpoint."""
    example = _example()
    bundle = example.build_bundle(tmp_path / "bundle" / "chat.bundle.js")
    ca_cert = tls_files[0].read_bytes()
    async with AuthClientAsync(tidings.endpoint, tls=True, root_certificates=ca_cert) as auth:
        app = example.create_app(auth, cache=CACHE, topic=TOPIC, web_endpoint=None, bundle=bundle)
        async with serve(app, backend_socket) as url:
            yield url


@pytest.fixture
async def browser(tls_files: tuple[Path, Path, Path]) -> AsyncIterator[Browser]:
    """Chromium resolving every name under the test domain to loopback and trusting the test's authority."""
    rules = f"--host-resolver-rules=MAP *.{DOMAIN} 127.0.0.1"
    async with chromium(rules, f"--ignore-certificate-errors-spki-list={spki_hash(tls_files[0])}") as browser:
        yield browser


async def _join(browser: Browser, url: str, name: str, requests: list[str]) -> Page:
    page = await (await browser.new_context()).new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.on("request", lambda request: requests.append(request.url))
    await page.goto(url + "/")
    await page.fill("#name", name)
    await page.click("#join button")
    await expect(page.locator('#room[data-ready="true"]')).to_be_attached(timeout=TIMEOUT_MS)
    return page


async def test_a_token_minted_by_tidings_works_in_an_unmodified_web_sdk_without_overrides(
    backend: str, tidings: ServerProcess, browser: Browser
) -> None:
    requests: list[str] = []
    ada = await _join(browser, backend, "ada", requests)
    bob = await _join(browser, backend, "bob", requests)

    await ada.fill("#text", "hello over https")
    await ada.click("#send button")
    message = bob.locator("#messages li", has=bob.locator(".author", has_text="ada")).filter(has_text="hello over")
    await expect(message).to_have_count(1, timeout=TIMEOUT_MS)

    state = json.loads(await ada.evaluate("sessionStorage.getItem('tidings-chat')"))
    assert state["webEndpoint"] is None
    envelope = json.loads(base64.b64decode(state["token"]))
    assert envelope["endpoint"] == f"{DOMAIN}:{tidings.http_port}"
    web_cache = f"https://web.cache.{DOMAIN}:{tidings.http_port}/cache_client.pubsub.Pubsub/"
    assert {url.removeprefix(web_cache) for url in requests if url.startswith(web_cache)} == {"Subscribe", "Publish"}
