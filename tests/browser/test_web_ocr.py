"""The Recognize and Extract tabs in a real browser, against the GLM-OCR-compatible routes
(/api/ocr/recognize, /api/ocr/extract): what they show compared with what the routes
answer for the same image, and a model answer that does not fit the schema."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import httpx
import pytest
from PIL import Image
from selenium.webdriver.support.ui import Select

from testkit.documents import sample_image
from testkit.layout_template import TEMPLATE
from tests.browser.web_page import WebPage

pytestmark = pytest.mark.triton


def region_png(folder: Path, label: str) -> Path:
    """A region of the sample page (the box the template draws ``label`` in) as a PNG."""
    page = Image.open(io.BytesIO(sample_image("PNG")))
    x1, y1, x2, y2 = next(box for name, box in TEMPLATE if name == label)
    path = folder / f"{label}.png"
    page.crop((round(x1 * page.width), round(y1 * page.height), round(x2 * page.width), round(y2 * page.height))).save(path)
    return path


def api_answer(url: str, route: str, image: Path, **fields: str) -> httpx.Response:
    return httpx.post(f"{url}/api/ocr/{route}", files={"image": (image.name, image.read_bytes())}, data=fields,
                      timeout=60)


def recognize(web: WebPage, image: Path, task: str) -> None:
    web.tab("Recognize")
    web.by_id("recognize-image").send_keys(str(image))
    Select(web.by_id("recognize-task")).select_by_value(task)
    web.by_id("recognize-start").click()
    web.wait_for(lambda: web.text("recognize-status").startswith("Recognized") or web.error("recognize"),
                 "the recognition", timeout=60)
    assert not web.error("recognize"), web.error("recognize")


@pytest.mark.parametrize(("task", "label"), [("text", "text"), ("formula", "display_formula"), ("table", "table")])
def test_recognize_shows_what_the_route_reads(web: WebPage, tmp_path: Path, task: str, label: str):
    image = region_png(tmp_path, label)
    recognize(web, image, task)
    expected = api_answer(web.url, "recognize", image, task=task).json()

    assert web.text("recognize-status").startswith(f"Recognized as {task} in ")
    assert web.by_id("recognize-text").get_property("textContent") == expected["text"]
    rendered = web.by_id("recognize-rendered")
    if task == "formula":
        assert web.all(".math-display .katex, .math-display .katex-error", rendered)
    elif task == "table":
        assert [cell.text for cell in web.all("td", rendered)] == re.findall(r"<td>(.*?)</td>", expected["text"])
    else:
        assert rendered.text == expected["text"]


def extract(web: WebPage, image: Path) -> None:
    web.tab("Extract")
    web.by_id("extract-image").send_keys(str(image))
    web.by_id("extract-start").click()
    web.wait_for(lambda: web.text("extract-status").startswith("Extracted") or web.error("extract"),
                 "the extraction", timeout=60)


def test_extract_fills_the_example_schema(web: WebPage, tmp_path: Path):
    image = region_png(tmp_path, "text")
    web.tab("Extract")
    schema = web.by_id("extract-schema").get_property("value")
    assert "invoice_number" in json.loads(schema)["properties"]
    extract(web, image)
    expected = api_answer(web.url, "extract", image, schema=schema).json()

    assert not web.error("extract")
    assert json.loads(web.text("extract-data")) == expected["data"]
    assert web.by_id("extract-raw").get_property("textContent") == expected["raw"]


def test_an_answer_that_does_not_fit_the_schema_is_shown_raw(web: WebPage, tmp_path: Path, vlm):
    vlm.configure(failures=[{"answer": "Sorry, I cannot read an invoice here."}])
    web.tab("Extract")
    Select(web.by_id("extract-example")).select_by_visible_text("ID card")
    extract(web, region_png(tmp_path, "text"))

    assert web.error("extract")
    assert web.by_id("extract-result").get_attribute("hidden") is not None
    assert web.by_id("extract-raw").get_property("textContent") == "Sorry, I cannot read an invoice here."


def test_a_recognized_formula_is_drawn_by_katex(web: WebPage, tmp_path: Path, vlm):
    vlm.configure(failures=[{"prompt": "Formula Recognition:", "answer": "\\sum_{i=1}^{n} i = \\frac{n(n+1)}{2}"}])
    recognize(web, region_png(tmp_path, "display_formula"), "formula")

    rendered = web.by_id("recognize-rendered")
    assert web.all(".katex-display .mfrac", rendered) and not web.all(".katex-error", rendered)
    assert web.text("recognize-text") == "\\sum_{i=1}^{n} i = \\frac{n(n+1)}{2}"
