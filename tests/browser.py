"""Headless Chromium for the HTML report's tests: Debian's `chromium` and `chromium-driver`
packages driven by selenium (the test extra). Nothing is downloaded: the driver is the system's
chromedriver, named explicitly, and Selenium Manager is told to stay offline. Where any of the
three is missing the tests skip, saying which."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def chromium_paths() -> tuple[str, str] | str:
    """(browser, driver), or why they cannot be used."""
    browser = next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)
    if browser is None:
        return "Chromium not installed (apt-get install chromium chromium-driver; .ci/run does)"
    driver = shutil.which("chromedriver")
    if driver is None:
        return "chromedriver not installed (apt-get install chromium-driver; .ci/run does)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium not installed (python -m pip install -e '.[test]')"
    return browser, driver


@contextmanager
def chromium(width: int = 1400, height: int = 1000) -> Iterator[Any]:
    """A headless Chromium session (skips the test where it cannot be had)."""
    found = chromium_paths()
    if isinstance(found, str):
        pytest.skip(found)
    browser, driver_path = found
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager: never fetch a driver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}", "--hide-scrollbars",
                "--disable-extensions", "--no-first-run"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def open_report(driver: Any, path: Path, timeout: float = 120.0) -> float:
    """Load a report page from its file and wait until it has drawn everything (the page sets
    ``data-ready`` on its body); the seconds that took, from the navigation's start."""
    driver.get(path.resolve().as_uri())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = driver.execute_script(
            "return [document.body.dataset.ready || '', "
            "document.getElementById('loading') ? document.getElementById('loading')"
            ".className : '']")
        if state[0] == "1":
            # the page's clock (performance.now) starts at the navigation
            return float(driver.execute_script("return window.PORTLENS_TIMES.ready")) / 1000
        if "error" in state[1]:
            text = driver.execute_script("return document.getElementById('loading').innerText")
            raise AssertionError(f"the report failed: {text}")
        time.sleep(0.05)
    raise AssertionError(f"the report did not finish drawing in {timeout} s")
