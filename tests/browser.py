"""Open a local page in headless chromium with the network blocked (for the browser tests).

Debian's chromium (``scripts/setup.sh --dev`` installs it; playwright drives it, no ``playwright
install``). Every request that is not a ``file:``, ``data:`` or ``blob:`` URL is aborted and
recorded, and the browser context is in offline mode, so a page that needs the network shows it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
LOCAL = ("file:", "data:", "blob:", "about:")


@dataclass
class OfflinePage:
    """A loaded page, the requests it tried to send out, and its console errors / exceptions."""

    page: Any  # playwright.sync_api.Page
    blocked: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@contextmanager
def offline_page(path: Path, width: int = 1280, height: int = 900) -> Iterator[OfflinePage]:
    """Load ``path`` (a local HTML file) in headless chromium, network blocked; yields the page."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: run `bash scripts/setup.sh --dev` (it installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        try:
            context = browser.new_context(offline=True, viewport={"width": width, "height": height})
            page = context.new_page()
            page.set_default_timeout(60_000)  # generous: the test machine may be shared
            out = OfflinePage(page)

            def route(r: Any) -> None:
                if r.request.url.startswith(LOCAL):
                    r.continue_()
                else:
                    out.blocked.append(r.request.url)
                    r.abort()

            page.route("**/*", route)
            page.on("console", lambda m: out.errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda exc: out.errors.append(str(exc)))
            page.goto(path.resolve().as_uri())
            yield out
        finally:
            browser.close()
