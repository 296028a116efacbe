"""A real headless Chromium for tests: Debian's ``chromium`` and ``chromium-driver``
packages driven by selenium, nothing downloaded (the driver and the browser are named
explicitly, so Selenium Manager never runs). Without them a test is skipped, except under
CI, where that is a failure (.ci/run installs them)."""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
PACKAGES = "chromium chromium-driver"
FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
)
SCREENSHOT_MAX_HEIGHT = 8000  # CSS pixels; a long result is cut there


def require_chromium() -> None:
    """Skips the test without the browser and its driver, or fails it under CI."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.is_file()]
    if not missing:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{' and '.join(missing)} missing: CI must install the Debian packages {PACKAGES} (.ci/run does)")
    pytest.skip(f"no headless browser ({', '.join(missing)}): apt-get install {PACKAGES} (Debian packages)")


@contextmanager
def running_chromium(download_dir: Path) -> Iterator["webdriver.Chrome"]:  # noqa: F821
    """A started browser with a fresh profile; quit and its profile removed afterwards.
    Files it downloads go to ``download_dir``."""
    require_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="hps-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument("--window-size=1280,900")
    options.add_experimental_option("prefs", {
        "download.default_directory": str(download_dir),
        "download.prompt_for_download": False,
    })
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def save_screenshot(driver, path: Path) -> None:
    """The whole page (not only the window) as a PNG, through the DevTools protocol."""
    metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
    size = metrics["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], SCREENSHOT_MAX_HEIGHT), "scale": 1}
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip, "optimizeForSpeed": True})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(shot["data"]))
