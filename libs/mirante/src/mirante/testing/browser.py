"""Browser tests of a service's pages: headless Chromium driven by Playwright, against a real server.

The fixtures are registered by the `mirante` pytest plugin, so any service's tests can ask for them:

- `browser`: one headless Chromium for the whole run (Debian's `/usr/bin/chromium`, or `MIRANTE_CHROMIUM`);
- `open_page`: `await open_page(base_url, token=...)`, a page in a fresh browser profile, signed in when a token
  is given; after the test it fails if any page reported a script error or a Content Security Policy violation;
- `page_problems`: those reports, for a test that expects one;
- `serve_app`: `url = await serve_app(app)`, the app under uvicorn on a free port of 127.0.0.1 until the test ends
  (`LiveServer` does the same for fixtures of a wider scope).

`sign_in(page, username, password)` goes through the sign-in page as a user would. Tests that use a browser are
marked `browser`, and skipped with the reason when Chromium or Playwright is missing.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import socket
import threading
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, urlsplit

import pytest
import pytest_asyncio
import uvicorn

from mirante.web.pages import LOGIN_PATH, TOKEN_STORAGE_KEY

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Error, Page

CHROMIUM_PATH = Path(os.environ.get("MIRANTE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS: tuple[str, ...] = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
)
DEFAULT_TIMEOUT_MS = 10_000
SERVER_START_SECONDS = 20.0


def browser_unavailable() -> str | None:
    """Why browser tests cannot run here, or None when they can."""
    if importlib.util.find_spec("playwright") is None:
        return "needs the playwright package"
    if not (CHROMIUM_PATH.is_file() and os.access(CHROMIUM_PATH, os.X_OK)):
        return (
            f"needs Chromium at {CHROMIUM_PATH} (Debian's chromium package: run `make browsers`; "
            "or set MIRANTE_CHROMIUM to a Chromium binary)"
        )
    return None


# -- a real server -------------------------------------------------------------------------------------------


class LiveServer:
    """An ASGI app under uvicorn in a background thread (its own event loop), on a free port of 127.0.0.1.

    Use `with LiveServer(app) as server:` or `async with ...`; `server.url` is its base URL. The app's lifespan
    runs in the server's thread, so it builds its engine and clients on that loop.
    """

    def __init__(self, app: Any, *, name: str = "live-server") -> None:
        self.app = app
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name=name, daemon=True
        )

    def start(self) -> LiveServer:
        """Serve from the background thread; returns once the server accepts connections."""
        self._thread.start()
        deadline = time.monotonic() + SERVER_START_SECONDS
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server for {self.url} did not start (see its log above)")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """Ask the server to finish (its lifespan shuts down) and wait for its thread."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=SERVER_START_SECONDS)
        self._socket.close()

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    async def __aenter__(self) -> LiveServer:
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, *_: object) -> None:
        await asyncio.to_thread(self.stop)


class AppServer(Protocol):
    async def __call__(self, app: Any) -> str: ...


@pytest_asyncio.fixture(loop_scope="session")
async def serve_app() -> AsyncIterator[AppServer]:
    """`url = await serve_app(app)`: the app on a real port of 127.0.0.1 (lifespan on) until the test ends."""
    async with AsyncExitStack() as stack:

        async def start(app: Any) -> str:
            server = await stack.enter_async_context(LiveServer(app))
            return server.url

        yield start


# -- the browser ---------------------------------------------------------------------------------------------


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    """Headless Chromium for the whole run, launched with the flags that work in containers."""
    reason = browser_unavailable()
    if reason is not None:
        pytest.skip(reason)
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=str(CHROMIUM_PATH), args=list(CHROMIUM_ARGS), headless=True
        )
        try:
            yield chromium
        finally:
            await chromium.close()


@dataclass
class PageProblems:
    """Script errors and CSP violations pages reported: a page that works reports none."""

    messages: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> None:
        """Collect what `page` reports from now on."""
        page.on("pageerror", self._page_error)
        page.on("console", self._console)

    def _page_error(self, error: Error) -> None:
        self.messages.append(f"uncaught: {error}")

    def _console(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Uncaught" in message.text:
            self.messages.append(f"console: {message.text}")


@pytest.fixture
def page_problems() -> PageProblems:
    """What the test's pages reported; `open_page` fails the test at its end unless this is empty."""
    return PageProblems()


class PageOpener(Protocol):
    async def __call__(self, base_url: str, *, token: str | None = None, **context_options: Any) -> Page: ...


def token_init_script(token: str) -> str:
    """A script that stores `token` where `mirante.js` looks for it, unless a page already replaced it."""
    key = json.dumps(TOKEN_STORAGE_KEY)
    saved = json.dumps(json.dumps({"token": token, "expiresAt": None}))
    return f"if (!sessionStorage.getItem({key})) sessionStorage.setItem({key}, {saved});"


@pytest_asyncio.fixture(loop_scope="session")
async def open_page(browser: Browser, page_problems: PageProblems) -> AsyncIterator[PageOpener]:
    """`await open_page(base_url, token=None)`: a page in a fresh browser profile (relative URLs resolve against
    `base_url`), already signed in when `token` is given; extra keywords go to `Browser.new_context`.

    Fails the test at its end when any page reported a script error or a CSP violation.
    """
    contexts: list[BrowserContext] = []

    async def make(base_url: str, *, token: str | None = None, **context_options: Any) -> Page:
        options: dict[str, Any] = {"accept_downloads": True} | context_options
        context = await browser.new_context(base_url=base_url, **options)
        contexts.append(context)
        if token is not None:
            await context.add_init_script(script=token_init_script(token))
        page = await context.new_page()
        page.set_default_timeout(DEFAULT_TIMEOUT_MS)
        page_problems.watch(page)
        return page

    yield make
    for context in contexts:
        await context.close()
    assert page_problems.messages == [], "the pages reported problems"


async def sign_in(page: Page, username: str, password: str, *, next_path: str | None = None) -> None:
    """Sign in through the sign-in page (with `next` when given) and wait until the page leaves it.

    Raises AssertionError with the form's message when the sign-in is refused.
    """
    target = LOGIN_PATH if next_path is None else f"{LOGIN_PATH}?next={quote(next_path, safe='')}"
    await page.goto(target)
    await page.fill("#username", username)
    await page.fill("#password", password)
    left = asyncio.ensure_future(page.wait_for_url(lambda url: urlsplit(url).path != LOGIN_PATH))
    refused = asyncio.ensure_future(page.locator("#login-error").wait_for(state="visible"))
    try:
        await page.click("#login-submit")
        done, _ = await asyncio.wait({left, refused}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in (left, refused):
            waiter.cancel()
        await asyncio.gather(left, refused, return_exceptions=True)
    if left in done:
        left.result()
        return
    refused.result()
    message = await page.locator("#login-error").text_content()
    raise AssertionError(f"signing in as {username!r} was refused: {message}")
