"""Shared fixtures: a headless Chromium (Debian's `chromium` package, driven by Playwright).

The browser is the system's (CHROMIUM, else `chromium` on PATH; .ci/run installs it with apt);
Playwright's own browser downloads are never used. Without a browser the browser tests are skipped
with the reason, except in CI (CI=true), where that is a failure.
"""

from __future__ import annotations

import os
import shutil

import pytest


def chromium_path() -> str | None:
    """The system Chromium, or None."""
    for cand in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser"):
        if cand and shutil.which(cand):
            return shutil.which(cand)
    return None


@pytest.fixture(scope="session")
def browser():
    """A headless Chromium for the whole session (Playwright on the system browser)."""
    path = chromium_path()
    why = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        why = 'playwright is not installed (pip install -e ".[test]")'
    if why is None and path is None:
        why = "no chromium on PATH (apt-get install -y chromium)"
    if why is not None:
        if os.environ.get("CI"):
            pytest.fail(f"browser tests need a browser in CI: {why}")
        pytest.skip(why)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


class Page:
    """A page that records console errors and uncaught exceptions."""

    def __init__(self, browser, **kw) -> None:
        self.context = browser.new_context(viewport={"width": 1360, "height": 900}, **kw)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on(
            "console",
            lambda m: self.errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None,
        )
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def new_page(browser):
    """Factory of pages (each in its own context: own storage, like another person's browser)."""
    pages: list[Page] = []

    def make(**kw) -> Page:
        p = Page(browser, **kw)
        pages.append(p)
        return p

    yield make
    for p in pages:
        p.close()
