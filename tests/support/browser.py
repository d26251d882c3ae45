"""Headless Chromium (Debian's ``chromium`` and ``chromium-driver``) driven by selenium.

For tests of the farm's pages. The browser gets a fresh profile and no
background traffic (no component updates, sync or first-run pages), so the
only requests it makes are the ones the page under test makes; tests read
them back with ``resource_urls``. ``deploy/install-system.sh --test`` (run by
``make test`` and CI) installs both packages; without them the page tests fail
rather than skip.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run")
PAGE_LOAD_SECONDS = 30


def missing_programs() -> list[str]:
    """The programs this module needs that are not on PATH."""
    return [name for name in ("chromium", "chromedriver") if shutil.which(name) is None]


@contextlib.contextmanager
def chromium(log_dir: Path | None = None) -> Iterator[WebDriver]:
    """A headless Chromium with a fresh profile, quit (and its profile removed) on exit.

    The driver's log goes to ``log_dir/chromedriver.log`` when given.
    """
    chromium_path, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium_path is None or driver_path is None:
        raise RuntimeError(f"not on PATH: {', '.join(missing_programs())}; "
                           "install chromium and chromium-driver")
    with tempfile.TemporaryDirectory(prefix="binder-chromium-") as profile:
        options = Options()
        options.binary_location = chromium_path
        for flag in (*FLAGS, f"--user-data-dir={profile}"):
            options.add_argument(flag)
        # A path to the driver keeps selenium from looking for (or fetching) one.
        log_output = str(log_dir / "chromedriver.log") if log_dir else None
        service = Service(executable_path=driver_path, log_output=log_output)
        driver = webdriver.Chrome(options=options, service=service)
        try:
            driver.set_page_load_timeout(PAGE_LOAD_SECONDS)
            yield driver
        finally:
            driver.quit()


def wait_for(driver: WebDriver, condition: Callable[[WebDriver], Any],
             seconds: float = 30) -> Any:
    """``condition(driver)`` once it is truthy, polling; times out with selenium's error."""
    return WebDriverWait(driver, seconds, poll_frequency=0.2).until(condition)


def resource_urls(driver: WebDriver) -> list[str]:
    """Every URL the current page fetched (scripts, styles, images, XHR/fetch)."""
    urls = driver.execute_script(
        "return performance.getEntriesByType('resource').map(entry => entry.name);")
    return [str(url) for url in urls]
