"""Headless Chromium for the report tests, driven by selenium (pinned in the ``browser`` extra)
through the system's chromedriver; ``make browser`` installs all three."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# no GPU, no network of its own (updates, sync, QUIC), nothing from an earlier profile
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
)


def skip_without_chromium() -> None:
    """Skip the calling test, saying what to install, when Chromium or selenium is absent."""
    if not CHROMIUM.is_file() or not CHROMEDRIVER.exists():
        pytest.skip(f"{CHROMIUM} or {CHROMEDRIVER} not installed (make browser installs them)")
    pytest.importorskip("selenium", reason="selenium not installed (make browser installs it)")


@contextmanager
def chromium() -> Iterator:
    """A selenium WebDriver of a fresh headless Chromium, closed (profile deleted) on exit."""
    skip_without_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = Path(tempfile.mkdtemp(prefix="lit_rpe_chromium_"))
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def load_every_image(driver, timeout: float = 30) -> list[dict]:
    """Make every <img> load now (lazy ones included), wait until each has finished, and return
    per image its src and naturalWidth (0 for one that failed)."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.execute_script(
        "document.querySelectorAll('img[loading=lazy]').forEach((i) => { i.loading = 'eager'; });"
    )
    WebDriverWait(driver, timeout).until(
        lambda d: d.execute_script(
            "return [...document.images].every((i) => i.hidden || !i.src || i.complete);"
        )
    )
    return driver.execute_script(
        "return [...document.images].filter((i) => !i.hidden && i.getAttribute('src'))"
        ".map((i) => ({src: i.currentSrc, width: i.naturalWidth}));"
    )
