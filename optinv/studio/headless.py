"""Drive the studio in a headless Chromium (Debian's ``chromium`` package) with Playwright.

The tests and ``scripts/studio_docs.py`` (screenshots, timings) share this. No browser is
downloaded: Playwright is pointed at the system Chromium, started with everything that would
phone home switched off and a fresh profile.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]


def chromium_path() -> str | None:
    """The system Chromium, or None (OPTINV_CHROMIUM overrides)."""
    for cand in (os.environ.get("OPTINV_CHROMIUM"), *CHROMIUM_CANDIDATES):
        if cand and Path(cand).is_file() and os.access(cand, os.X_OK):
            return cand
    return shutil.which("chromium")


def why_no_browser() -> str | None:
    """None when a headless browser can be started here, else the reason."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[studio,test]')"
    if chromium_path() is None:
        return "no chromium executable (apt-get install chromium)"
    return None


class Browser:
    """A Playwright-driven headless Chromium with its own throw-away profile."""

    def __init__(self) -> None:
        from playwright.sync_api import sync_playwright

        self._profile = tempfile.TemporaryDirectory(prefix="optinv-chromium-")
        self._pw = sync_playwright().start()
        try:
            self.context = self._pw.chromium.launch_persistent_context(
                self._profile.name, executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS,
                viewport={"width": 1360, "height": 900}, accept_downloads=False)
        except Exception:
            self._pw.stop()
            raise

    def new_page(self) -> Any:
        return self.context.new_page()

    def close(self) -> None:
        try:
            self.context.close()
        finally:
            self._pw.stop()
            self._profile.cleanup()
