"""A chat room in the browser: Momento's web SDK on the page, tidings behind it, and a backend that mints tokens.

The backend (this file) serves the page and, per user, mints a disposable token that may publish and subscribe on
one room topic, with the user's name as the token id: subscribers see it as the publisher of every message. The
page (``chat.js``, bundled with ``@gomomento/sdk-web`` by esbuild) talks to tidings' HTTP port directly, over
gRPC-web; the backend never sees a chat message.

Configuration (environment):

- ``TIDINGS_ENDPOINT``: tidings' gRPC ``host:port``, where tokens are minted (default ``localhost:8080``).
- ``TIDINGS_API_KEY``: a super-user key (the server's ``admin.key``); none on a loopback server without
  ``--require-auth``.
- ``CHAT_WEB_ENDPOINT``: the URL of tidings' HTTP port as the browser reaches it (default
  ``http://localhost:8081``), given to the page as the web SDK's endpoint overrides; empty for none, when the
  tokens' own endpoint leads to tidings (docs/browser.md, *Production*).
- ``CHAT_CACHE`` / ``CHAT_TOPIC``: the room (default ``default-cache`` / ``lobby``).
- ``HOST``, ``PORT``: where the backend listens (default ``127.0.0.1``, ``3000``).

``python browser_chat.py`` builds the page's bundle and serves; ``uvicorn --factory browser_chat:app_from_env``
serves a bundle built before with ``python browser_chat.py --build``.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from tidings import AuthClientAsync, GenerateDisposableToken, TopicScope

HERE = Path(__file__).resolve().parent
BUNDLE = HERE / "build" / "chat.bundle.js"
# The repository's npm install (tests/node: `npm ci` there, or `make test`), which has @gomomento/sdk-web and
# esbuild; NODE_MODULES points elsewhere.
NODE_MODULES = Path(os.environ.get("NODE_MODULES", HERE.parents[1] / "tests" / "node" / "node_modules"))
TOKEN_LIFETIME = timedelta(minutes=30)
MAX_NAME = 32


def build_bundle(output: Path = BUNDLE) -> Path:
    """Bundle ``chat.js`` with the web SDK from npm (never a CDN) into one script for the page."""
    output.parent.mkdir(parents=True, exist_ok=True)
    command = [
        str(NODE_MODULES / ".bin" / "esbuild"), str(HERE / "chat.js"), "--bundle", "--format=iife",
        "--platform=browser", "--target=es2020", "--log-level=warning", f"--outfile={output}",
    ]  # fmt: skip
    subprocess.run(command, check=True, env={**os.environ, "NODE_PATH": str(NODE_MODULES)})
    return output


def _name(body: Any) -> str | None:
    name = body.get("name") if isinstance(body, dict) else None
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > MAX_NAME:
        return None
    return name.strip()


def create_app(
    auth: AuthClientAsync,
    *,
    cache: str,
    topic: str,
    web_endpoint: str | None,
    bundle: Path = BUNDLE,
    lifespan: Any = None,
) -> Starlette:
    """The backend: ``GET /`` the page, ``GET /chat.js`` its bundle, ``POST /token`` a token for one user.

    ``POST /token`` takes ``{"name": "ada"}`` (and ``"readOnly": true`` for a subscribe-only token, a
    spectator) and answers ``{"token", "webEndpoint", "cache", "topic", "name", "expiresAt"}``: ``token`` is
    the Momento-style token (its ``endpoint`` inside), ``webEndpoint`` the endpoint overrides for the web SDK
    or null. A real application would mint only for a signed-in user, under the name it knows them by.
    The bundle must have been built (`build_bundle`).
    """
    if not bundle.is_file():
        raise FileNotFoundError(f"{bundle} is not built: run python browser_chat.py --build")

    async def page(request: Request) -> Response:
        return FileResponse(HERE / "index.html", media_type="text/html")

    async def script(request: Request) -> Response:
        return FileResponse(bundle, media_type="text/javascript")

    async def token(request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            body = None
        name = _name(body)
        if name is None:
            return JSONResponse({"error": f"send {{'name': 1 to {MAX_NAME} characters}}"}, 400)
        read_only = isinstance(body, dict) and body.get("readOnly") is True
        scope = TopicScope.subscribe_only(cache, topic) if read_only else TopicScope.publish_subscribe(cache, topic)
        match await auth.generate_disposable_token(scope, TOKEN_LIFETIME, token_id=name):
            case GenerateDisposableToken.Success() as minted:
                return JSONResponse(
                    {
                        "token": minted.momento_token,
                        "webEndpoint": web_endpoint,
                        "cache": cache,
                        "topic": topic,
                        "name": name,
                        "expiresAt": minted.expires_at.isoformat(),
                    }
                )
            case GenerateDisposableToken.Error(error_code=code, message=message):
                return JSONResponse({"error": f"tidings did not mint a token: {code.name} {message}"}, 502)
        raise AssertionError("unreachable")

    routes = [
        Route("/", page, methods=["GET"]),
        Route("/chat.js", script, methods=["GET"]),
        Route("/token", token, methods=["POST"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def app_from_env() -> Starlette:
    """The backend configured from the environment; its SDK client is closed when the server shuts down."""
    auth = AuthClientAsync.from_env()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with auth:
            yield

    return create_app(
        auth,
        cache=os.environ.get("CHAT_CACHE", "default-cache"),
        topic=os.environ.get("CHAT_TOPIC", "lobby"),
        web_endpoint=os.environ.get("CHAT_WEB_ENDPOINT", "http://localhost:8081") or None,
        lifespan=lifespan,
    )


if __name__ == "__main__":
    build_bundle()
    if "--build" not in sys.argv[1:]:
        import uvicorn

        host, port = os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "3000"))
        uvicorn.run(app_from_env(), host=host, port=port)
