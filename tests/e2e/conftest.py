"""Browser fixtures: one Debian chromium per test module, a fresh context per login.

Playwright's sync API runs an event loop in this thread; Django would then refuse ORM calls
made by the test itself ("You cannot call this from an async context"), hence the flag, set
only while a browser runs: the other tests (a gate judging ``check --deploy`` in-process,
which rightly refuses the flag) run in a process without it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ASYNC_UNSAFE = "DJANGO_ALLOW_ASYNC_UNSAFE"

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
RESULTS_DIR = Path(__file__).resolve().parents[2] / "test-results"


def _chromium_path() -> str:
    path = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)) and not shutil.which(path):
        pytest.fail(
            f"Chromium not found at {path!r}. Install Debian's chromium (apt-get install "
            "chromium) or set CHROMIUM_PATH; browser tests never download a browser.",
            pytrace=False,
        )
    return path


class _LazyBrowser:
    """Starts chromium on first use, inside the test body, so a missing or broken browser
    makes the test FAIL (not error, never skip) with a clear message."""

    def __init__(self):
        self._playwright_manager = None
        self._browser = None
        self._flag_before = None

    def get(self):
        if self._browser is None:
            executable = _chromium_path()
            self._flag_before = os.environ.get(ASYNC_UNSAFE)
            os.environ[ASYNC_UNSAFE] = "true"
            from playwright.sync_api import sync_playwright

            self._playwright_manager = sync_playwright()
            playwright = self._playwright_manager.start()
            try:
                self._browser = playwright.chromium.launch(
                    executable_path=executable, headless=True, args=CHROMIUM_ARGS
                )
            except Exception as exc:
                pytest.fail(f"Chromium at {executable!r} did not start: {exc}", pytrace=False)
        return self._browser

    def close(self):
        if self._browser is not None:
            self._browser.close()
        if self._playwright_manager is not None:
            self._playwright_manager.__exit__(None, None, None)
            if self._flag_before is None:
                os.environ.pop(ASYNC_UNSAFE, None)
            else:
                os.environ[ASYNC_UNSAFE] = self._flag_before


@pytest.fixture(scope="module")
def browser():
    """The module's chromium (one process for its browser tests), started on first use and
    stopped with the module, its event loop with it."""
    lazy = _LazyBrowser()
    yield lazy
    lazy.close()


# What chromium writes to the console when the content security policy blocks something
# (an inline script or handler, a style attribute, a script or style from elsewhere).
CSP_VIOLATION_MARKERS = ("Content Security Policy", "Content-Security-Policy")


@pytest.fixture
def csp_violations():
    """The console messages of the test's pages that report a blocked resource (CSP)."""
    return []


@pytest.fixture
def new_page(browser, live_server, csp_violations):
    """new_page(locale=None) → a page in its own browser context (own cookies: one login per
    context), in the browser language ``locale``.

    Every page listens to its console: a content security policy violation on any page of a
    browser test fails that test (checked after the test body, so its own assertions speak
    first)."""
    contexts = []

    def on_console(message):
        if any(marker in message.text for marker in CSP_VIOLATION_MARKERS):
            csp_violations.append(f"{message.type}: {message.text} ({message.location})")

    def make(locale: str | None = None):
        # ``locale`` is the browser's language (its Accept-Language header), "zh-CN" say.
        context = browser.get().new_context(
            base_url=live_server.url, viewport={"width": 1280, "height": 900}, locale=locale
        )
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        page.on("console", on_console)
        return page

    yield make
    for context in contexts:
        context.close()
    if csp_violations:
        pytest.fail(
            "Content security policy violations in the browser:\n" + "\n".join(csp_violations),
            pytrace=False,
        )


@pytest.fixture
def screenshot():
    """screenshot(page, name) → saves test-results/<name>.png (gitignored) and returns the path."""
    RESULTS_DIR.mkdir(exist_ok=True)

    def take(page, name: str) -> Path:
        path = RESULTS_DIR / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
