"""Browser tests: the web page in a real headless Chromium (tests/support/browser.py),
served by the session's gateway (tests/conftest.py: gunicorn → tritonserver → VLM
stand-in). One browser for the session; each test loads the page afresh, and leaves a
screenshot of the whole page in test-artifacts/screenshots/<test>.png."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Iterator

import pytest

from scripts.gateway_local import GatewayServer
from tests.browser.web_page import WebPage
from tests.support.browser import require_chromium, running_chromium, save_screenshot

REPO_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO_ROOT / "test-artifacts" / "screenshots"


@pytest.fixture(scope="session", autouse=True)
def chromium_installed() -> None:
    """Looked for before any fixture starts a server: without a browser every test here is
    skipped (failed under CI) at once."""
    require_chromium()


@pytest.fixture(scope="session")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="session")
def browser(downloads: Path) -> Iterator:
    with running_chromium(downloads) as driver:
        yield driver


@pytest.fixture()
def open_page(request: pytest.FixtureRequest, browser, downloads: Path) -> Iterator[Callable[[GatewayServer], WebPage]]:
    """``open_page(server)``: the page, fresh from ``server``, in a 1280x900 window."""
    for old in downloads.iterdir():
        old.unlink()
    browser.set_window_size(1280, 900)
    browser.get_log("browser")  # the last test's console lines

    def open_from(server: GatewayServer) -> WebPage:
        return WebPage(browser, server.url).open()

    yield open_from
    save_screenshot(browser, SCREENSHOTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', request.node.name)}.png")
    browser.execute_cdp_cmd("Network.emulateNetworkConditions",
                            {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
    browser.execute_script("localStorage.clear()")


@pytest.fixture()
def web(open_page: Callable[[GatewayServer], WebPage], request: pytest.FixtureRequest) -> WebPage:
    """The page from the session's shared gateway."""
    return open_page(request.getfixturevalue("gateway"))
