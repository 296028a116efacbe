"""The web page as a person uses it, for the browser tests: what they click, type and
see. Every wait is bounded (WebDriverWait) and says what it waited for."""

from __future__ import annotations

import re
from pathlib import Path

from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

PARSE_TIMEOUT = 60.0
UI_TIMEOUT = 10.0


class WebPage:
    def __init__(self, driver: WebDriver, url: str) -> None:
        self.driver = driver
        self.url = url

    # --- finding and waiting ------------------------------------------------------------

    def open(self) -> "WebPage":
        self.driver.get(f"{self.url}/")
        self.wait_for(lambda: self.driver.execute_script("return document.body.dataset.ready === 'true'"),
                      "the page's scripts to run")
        return self

    def by_id(self, element_id: str) -> WebElement:
        return self.driver.find_element(By.ID, element_id)

    def all(self, css: str, within: WebElement | None = None) -> list[WebElement]:
        return (within or self.driver).find_elements(By.CSS_SELECTOR, css)

    def wait_for(self, condition, what: str, timeout: float = UI_TIMEOUT):
        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.05).until(lambda _: condition())
        except TimeoutException:
            raise AssertionError(
                f"waited {timeout:g} s for {what}; status {self.text('parse-status')!r}, error {self.error()!r}"
            ) from None

    def text(self, element_id: str) -> str:
        return self.by_id(element_id).text

    def script(self, code: str, *args):
        return self.driver.execute_script(code, *args)

    def tab(self, name: str) -> WebElement:
        """Selects the tab whose text is ``name`` by clicking it."""
        tab = next(t for t in self.all('[role="tab"]') if t.text == name)
        tab.click()
        return tab

    def save_key(self, key: str) -> None:
        """Types ``key`` into the API key box (opened if closed) and presses Enter."""
        if not self.by_id("key-box").get_attribute("open"):
            self.driver.find_element(By.CSS_SELECTOR, "#key-box summary").click()
        field = self.by_id("key-input")
        field.clear()
        field.send_keys(key, Keys.ENTER)
        self.wait_for(lambda: self.text("key-state") == "set", "the key to be saved")

    # --- the Parse tab ------------------------------------------------------------------

    def start_parse(self, document: Path, pages: str = "", dpi: str = "") -> None:
        """Chooses ``document`` through the file input, fills the fields, presses Parse."""
        self.by_id("parse-file").send_keys(str(document))
        self.wait_for(lambda: document.name in self.text("dropzone-file"), "the chosen file's name")
        for field, value in (("parse-pages", pages), ("parse-dpi", dpi)):
            self.by_id(field).clear()
            if value:
                self.by_id(field).send_keys(value)
        self.by_id("parse-start").click()

    def parse(self, document: Path, pages: str = "", dpi: str = "") -> str:
        """Parses ``document`` to its end; the status line then ("Done: 3 of 3 pages.")."""
        self.start_parse(document, pages, dpi)
        return self.wait_until_done()

    def wait_until_done(self, timeout: float = PARSE_TIMEOUT) -> str:
        self.wait_for(lambda: self.text("parse-status").startswith("Done") or self.error(),
                      "the document to be parsed", timeout)
        assert not self.error(), self.error()
        self.wait_for(lambda: not self.all(".page-canvas.drawing"), "every page to be drawn")
        return self.text("parse-status")

    def error(self, name: str = "parse") -> str:
        box = self.by_id(f"{name}-error")
        return box.text if box.is_displayed() else ""

    def wait_for_error(self, name: str = "parse", timeout: float = PARSE_TIMEOUT) -> str:
        return self.wait_for(lambda: self.error(name), f"an error on the {name} tab", timeout)

    def pages(self) -> list[WebElement]:
        return self.all("article.page")

    def pages_done(self) -> int:
        """N of the status line's "N of M pages"."""
        found = re.search(r"(\d+) of \d+ page", self.text("parse-status"))
        return int(found.group(1)) if found else 0

    def hover(self, element: WebElement) -> None:
        ActionChains(self.driver).move_to_element(element).perform()

    def move_away(self) -> None:
        """The mouse over the page's heading, away from every box."""
        ActionChains(self.driver).move_to_element(self.driver.find_element(By.TAG_NAME, "h1")).perform()

    def tooltip(self, page: WebElement) -> str:
        tip = page.find_element(By.CSS_SELECTOR, ".box-tip")
        return tip.text if tip.is_displayed() else ""

    def visible_text_lines(self, element: WebElement) -> list[str]:
        """The lines a reader sees in ``element``, formulas and pictures left out."""
        return self.script(
            """const copy = arguments[0].cloneNode(true);
               copy.querySelectorAll('.math-display, img').forEach((node) => node.remove());
               document.body.append(copy);  // innerText needs layout
               const text = copy.innerText;
               copy.remove();
               return text.split('\\n').map((line) => line.trim()).filter(Boolean);""",
            element,
        )

    def console_errors(self) -> list[str]:
        return [entry["message"] for entry in self.driver.get_log("browser") if entry["level"] == "SEVERE"]
