"""docparse compare's HTML report opens in a real browser with its charts drawn, offline
(Debian's chromium; screenshot in test-artifacts/screenshots/compare_report.png)."""

from __future__ import annotations

from pathlib import Path

from docparse.compare import report
from tests.browser.conftest import SCREENSHOTS
from tests.support.browser import save_screenshot
from tests.unit.test_compare_report import GOLD, fixed_runs


def test_the_compare_report_opens_with_its_charts(browser, tmp_path: Path):
    _, page, _ = report.write(report.summarize(fixed_runs(), GOLD, "http://gw", 2), tmp_path)
    browser.execute_cdp_cmd("Network.emulateNetworkConditions",
                            {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
    try:
        browser.get(page.as_uri())
        charts = browser.execute_script(
            "return [...document.querySelectorAll('svg')].map(s => {const r = s.getBoundingClientRect();"
            " return [r.width, r.height, s.querySelectorAll('rect, line, circle, path').length];});"
        )
        save_screenshot(browser, SCREENSHOTS / "compare_report.png")
    finally:
        browser.execute_cdp_cmd("Network.emulateNetworkConditions",
                                {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
    assert len(charts) == 3, charts
    assert all(width > 100 and height > 50 and marks > 2 for width, height, marks in charts), charts
    assert "Latency per model" in browser.find_element("tag name", "body").text
