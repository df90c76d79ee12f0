"""Debian's headless Chromium driven by selenium through Debian's chromedriver.

Only loopback pages are loaded; a fresh profile per test; no proxy, no network
services of the browser's own.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-proxy-server",
    "--disable-dev-shm-usage",
)
PAGE_LOAD_TIMEOUT_S = 30


@contextlib.contextmanager
def chromium(profile: Path, *, network_log: bool = False) -> Iterator[webdriver.Chrome]:
    """A headless Chromium with a fresh profile in ``profile``; quit on exit.

    ``network_log``: DevTools network events (WebSocket frames too) are kept for
    ``driver.get_log("performance")``.
    """
    assert Path(CHROMIUM).exists(), "Debian's chromium is missing (apt-get install chromium)"
    assert Path(CHROMEDRIVER).exists(), "chromedriver is missing (apt-get install chromium-driver)"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    if network_log:
        options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    service = Service(
        executable_path=CHROMEDRIVER, log_output=str(profile.parent / "chromedriver.log")
    )
    driver = webdriver.Chrome(service=service, options=options)
    try:
        driver.set_page_load_timeout(PAGE_LOAD_TIMEOUT_S)
        yield driver
    finally:
        driver.quit()
