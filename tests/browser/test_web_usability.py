"""The page for keyboard users, screen readers and small screens, and with no internet:
tabs driven by arrow keys, the drop zone opened from the keyboard, a file dropped on it,
every control labelled, focus visible, progress announced, no sideways scrolling at
360 px, nothing loaded from anywhere but the gateway."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from testkit.documents import sample_pdf
from tests.browser.test_web_parse import write
from tests.browser.web_page import WebPage

pytestmark = pytest.mark.triton

TOOLS = ["tab-parse", "tab-recognize", "tab-extract"]
CONTROLS = "input:not([hidden]), select, textarea, button, [role=button], summary"


def selected_tool(web: WebPage) -> str:
    """The selected tool's tab, after checking that it alone has the focus, the tab stop
    and a shown panel (read in one call: a WebDriver round trip each would be slow)."""
    state = web.script("""return arguments[0].map((id) => {
        const tab = document.getElementById(id);
        const panel = document.getElementById(tab.getAttribute('aria-controls'));
        return [id, tab.getAttribute('aria-selected'), tab.tabIndex, !panel.hidden, document.activeElement === tab];
      });""", TOOLS)
    selected = [row for row in state if row[1] == "true"]
    assert len(selected) == 1 and selected[0][2:] == [0, True, True], state
    assert [row for row in state if row[1] != "true"] == [[row[0], "false", -1, False, False] for row in state
                                                          if row[1] != "true"], state
    return selected[0][0]


def press(web: WebPage, *keys: str) -> None:
    web.driver.switch_to.active_element.send_keys(*keys)


def tab_to(web: WebPage, element_id: str, most: int = 20) -> None:
    """Presses Tab from the page's start until ``element_id`` has the focus."""
    web.script("document.activeElement.blur(); window.getSelection().removeAllRanges()")
    web.driver.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    for _ in range(most):
        if web.driver.switch_to.active_element.get_attribute("id") == element_id:
            return
        press(web, Keys.TAB)
    raise AssertionError(f"Tab never reached #{element_id}")


def test_the_tools_are_tabs_moved_through_with_arrow_keys(web: WebPage):
    tab_to(web, "tab-parse")
    assert selected_tool(web) == "tab-parse"
    expected = [(Keys.ARROW_RIGHT, "tab-recognize"), (Keys.ARROW_RIGHT, "tab-extract"), (Keys.ARROW_RIGHT, "tab-parse"),
                (Keys.ARROW_LEFT, "tab-extract"), (Keys.HOME, "tab-parse"), (Keys.END, "tab-extract")]
    for key, tool in expected:
        press(web, key)
        assert selected_tool(web) == tool


def test_the_drop_zone_opens_the_file_picker_from_the_keyboard(web: WebPage):
    # Notes each opening of the picker (a click on the file input) instead of opening it.
    web.script("""window.pickerOpened = 0;
                  document.getElementById('parse-file').addEventListener('click', (event) => {
                    window.pickerOpened += 1; event.preventDefault(); });""")
    tab_to(web, "dropzone")
    assert web.driver.switch_to.active_element.get_attribute("role") == "button"
    press(web, Keys.ENTER)
    press(web, Keys.SPACE)
    assert web.script("return window.pickerOpened") == 2
    assert web.script("return getComputedStyle(document.activeElement).outlineStyle") == "solid"  # focus shows


def test_a_file_dropped_on_the_drop_zone_is_parsed(web: WebPage):
    pdf = base64.b64encode(sample_pdf(pages=1)).decode()
    web.script("""const bytes = Uint8Array.from(atob(arguments[0]), (c) => c.charCodeAt(0));
                  const transfer = new DataTransfer();
                  transfer.items.add(new File([bytes], 'dropped.pdf', { type: 'application/pdf' }));
                  const zone = document.getElementById('dropzone');
                  for (const type of ['dragenter', 'dragover', 'drop']) {
                    zone.dispatchEvent(new DragEvent(type, { dataTransfer: transfer, bubbles: true, cancelable: true }));
                  }""", pdf)
    assert web.text("dropzone-file").startswith("dropped.pdf")
    web.by_id("parse-start").click()
    assert web.wait_until_done() == "Done: 1 of 1 page."


def test_every_control_is_labelled_and_progress_is_announced(web: WebPage):
    unnamed = []
    for tool in TOOLS:
        web.by_id(tool).click()
        for control in web.all(CONTROLS):
            if control.is_displayed() and not control.accessible_name.strip():
                unnamed.append(control.get_attribute("outerHTML")[:120])
    assert unnamed == []
    status = web.by_id("parse-status")
    assert status.get_attribute("role") == "status" and status.get_attribute("aria-live") == "polite"
    assert web.by_id("parse-error").get_attribute("role") == "alert"


def test_a_narrow_window_never_scrolls_sideways(web: WebPage, tmp_path: Path):
    web.driver.set_window_size(360, 800)
    assert web.script("return window.innerWidth") <= 360
    web.parse(write(tmp_path, "report.pdf", sample_pdf(pages=1)))
    overflow = "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
    for view in ["Markdown", "JSON", "Pages"]:
        web.tab(view)
        assert web.script(overflow) <= 0, view
    for tool in ["Recognize", "Extract", "Parse document"]:
        web.tab(tool)
        assert web.script(overflow) <= 0, tool


def test_everything_comes_from_the_gateway(web: WebPage, tmp_path: Path, vlm):
    vlm.configure(failures=[{"prompt": "Formula Recognition:", "answer": "\\int_0^1 x\\,dx"}])  # KaTeX's fonts
    web.parse(write(tmp_path, "report.pdf", sample_pdf(pages=1)))  # pdf.js and its worker too
    loaded = web.script("return performance.getEntriesByType('resource').map((entry) => entry.name)")
    assert any(name.endswith("/pdf.worker.min.mjs") for name in loaded)
    assert any("KaTeX_" in name for name in loaded)  # the fonts, through the CSS
    assert [name for name in loaded if not name.startswith((f"{web.url}/", "blob:", "data:"))] == []
