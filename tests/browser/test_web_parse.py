"""The Parse tab in a real browser: a document chosen through the file input, its pages
as they stream in, what they show compared with what the API answers for the same
document, the boxes' text, the Markdown and JSON views and downloads, Cancel."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from testkit.documents import sample_image, sample_pdf
from tests.browser.web_page import WebPage
from tests.e2e.test_gateway import assert_work_stopped

pytestmark = pytest.mark.triton


def write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


def api_pages(url: str, name: str, data: bytes, **fields: str) -> list[dict]:
    """The page results /layout-parsing gives for the same upload."""
    response = httpx.post(f"{url}/layout-parsing", files={"file": (name, data)}, data=fields, timeout=120)
    assert response.status_code == 200, response.text
    return response.json()["result"]["layoutParsingResults"]


def seen_lines(markdown: str) -> list[str]:
    """The lines a reader sees for the API's Markdown, formulas and images left out:
    headings without their #, paragraphs, a table's rows (cells tab-separated)."""
    lines = []
    for block in markdown.split("\n\n"):
        block = block.strip()
        if not block or block.startswith(("$$", "![")):
            continue
        if block.startswith("<"):
            for row in re.findall(r"<tr>(.*?)</tr>", block, flags=re.S):
                lines.append("\t".join(re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, flags=re.S)))
            continue
        lines.append(re.sub(r"^#+\s+", "", block))
    return lines


def page_image_size(web: WebPage, page) -> tuple[str, int]:
    image = page.find_element(By.CSS_SELECTOR, ".page-image")
    return image.get_attribute("src"), web.script("return arguments[0].naturalWidth", image)


def test_each_page_shows_what_the_api_gives(web: WebPage, tmp_path: Path):
    data = sample_pdf(pages=3)
    status = web.parse(write(tmp_path, "report.pdf", data))
    expected = api_pages(web.url, "report.pdf", data)

    assert status == "Done: 3 of 3 pages."
    pages = web.pages()
    assert [p.find_element(By.CSS_SELECTOR, ".page-title").text for p in pages] == [
        "Page 1 · 8 regions", "Page 2 · 8 regions", "Page 3 · 8 regions"]
    for page, result in zip(pages, expected, strict=True):
        pruned, markdown = result["prunedResult"], result["markdown"]
        # The page drawn by pdf.js at the size the server rendered it, one box per layout box.
        src, width = page_image_size(web, page)
        assert src.startswith("blob:") and width == pruned["width"]
        boxes = web.all(".box", page)
        assert [b.get_attribute("data-label") for b in boxes] == [b["label"] for b in pruned["layout_det_res"]["boxes"]]
        # Boxes in the server's pixels, scaled to the width the picture is shown at.
        image_rect = web.script("return arguments[0].getBoundingClientRect()", page.find_element(By.CSS_SELECTOR, ".page-image"))
        scale = image_rect["width"] / pruned["width"]
        for box, layout in zip(boxes, pruned["layout_det_res"]["boxes"], strict=True):
            rect = web.script("return arguments[0].getBoundingClientRect()", box)
            x1, y1, x2, _ = layout["coordinate"]
            assert rect["left"] - image_rect["left"] == pytest.approx(x1 * scale, abs=1.5)
            assert rect["top"] - image_rect["top"] == pytest.approx(y1 * scale, abs=1.5)
            assert rect["width"] == pytest.approx((x2 - x1) * scale, abs=1.5)
        # The Markdown drawn: its text, the table, each formula through KaTeX, the figures.
        drawn = page.find_element(By.CSS_SELECTOR, ".page-markdown")
        assert web.visible_text_lines(drawn) == seen_lines(markdown["text"])
        assert len(web.all("table", drawn)) == markdown["text"].count("<table")
        formulas = web.all(".math-display", drawn)
        assert len(formulas) == markdown["text"].count("$$") // 2
        assert all(web.all(".katex, .katex-error", formula) for formula in formulas)
        figures = web.all("img", drawn)
        assert len(figures) == len(markdown["images"])
        for figure in figures:
            assert figure.get_attribute("src").startswith("data:image/jpeg;base64,")
            # A data URL is decoded asynchronously: the picture shows once it is.
            web.wait_for(lambda: web.script("return arguments[0].complete && arguments[0].naturalWidth", figure) > 0,
                         "a figure picture to be decoded")
    legend = [item.text for item in web.all("#legend li")]
    assert legend == sorted(legend) and "text (3)" in legend and "table (3)" in legend
    assert web.console_errors() == []


def test_markdown_and_json_views_and_downloads(web: WebPage, tmp_path: Path, downloads: Path):
    data = sample_pdf(pages=2)
    web.parse(write(tmp_path, "two pages.pdf", data))
    expected = api_pages(web.url, "two pages.pdf", data)
    markdown = "\n\n".join(page["markdown"]["text"] for page in expected)

    web.tab("Markdown")
    assert web.by_id("markdown-source").get_property("textContent") == markdown
    web.tab("JSON")
    shown = json.loads(web.by_id("json-source").get_property("textContent"))
    assert [p["prunedResult"] for p in shown["result"]["layoutParsingResults"]] == [p["prunedResult"] for p in expected]
    assert shown["result"]["dataInfo"]["numPages"] == 2

    web.by_id("download-md").click()
    web.by_id("download-json").click()
    md_file, json_file = downloads / "two pages.md", downloads / "two pages.json"
    web.wait_for(lambda: md_file.exists() and json_file.exists() and not list(downloads.glob("*.crdownload")),
                 "both downloads")
    assert md_file.read_text(encoding="utf-8") == markdown
    envelope = json.loads(json_file.read_text(encoding="utf-8"))
    assert envelope["errorCode"] == 0 and envelope["logId"] == web.text("result-log-id")
    assert envelope["result"]["layoutParsingResults"] == expected  # the figures' base64 whole


def test_a_box_shows_its_text_on_hover_click_and_keyboard(web: WebPage, tmp_path: Path):
    data = sample_pdf(pages=1)
    web.parse(write(tmp_path, "one.pdf", data))
    blocks = {b["block_label"]: b["block_content"] for b in api_pages(web.url, "one.pdf", data)[0]["prunedResult"]["parsing_res_list"]}
    page = web.pages()[0]
    boxes = {box.get_attribute("data-label"): box for box in web.all(".box", page)}

    web.hover(boxes["text"])
    web.wait_for(lambda: blocks["text"] in web.tooltip(page), "the text box's tooltip")
    web.move_away()
    web.wait_for(lambda: web.tooltip(page) == "", "the tooltip to go")

    boxes["paragraph_title"].click()  # pinned: stays when the mouse leaves
    web.move_away()
    assert blocks["paragraph_title"] in web.tooltip(page)
    assert boxes["paragraph_title"].get_attribute("aria-pressed") == "true"
    boxes["paragraph_title"].send_keys(Keys.ESCAPE)
    web.wait_for(lambda: boxes["paragraph_title"].get_attribute("aria-pressed") == "false", "Escape to unpin")

    # Keyboard only: Tab from the result's tabs to the first box (the header: no text read).
    web.tab("Pages")
    for _ in range(10):
        if web.script("return document.activeElement.classList.contains('box')"):
            break
        web.driver.switch_to.active_element.send_keys(Keys.TAB)
    assert web.driver.switch_to.active_element == boxes["header"]
    assert "No text" in web.tooltip(page)
    web.driver.switch_to.active_element.send_keys(Keys.TAB)
    assert web.driver.switch_to.active_element == boxes["doc_title"]
    assert blocks["doc_title"] in web.tooltip(page)
    web.driver.switch_to.active_element.send_keys(Keys.ENTER)
    assert boxes["doc_title"].get_attribute("aria-pressed") == "true"


def test_a_page_range_at_a_lower_resolution(web: WebPage, tmp_path: Path):
    data = sample_pdf(pages=3)
    status = web.parse(write(tmp_path, "report.pdf", data), pages="2-3", dpi="72")
    expected = api_pages(web.url, "report.pdf", data, pages="2-3", dpi="72")

    assert status == "Done: 2 of 2 pages."
    pages = web.pages()
    assert [p.get_attribute("id") for p in pages] == ["page-2", "page-3"]
    for page, result in zip(pages, expected, strict=True):
        assert page_image_size(web, page)[1] == result["prunedResult"]["width"] == 596
        assert len(web.all(".box", page)) == len(result["prunedResult"]["layout_det_res"]["boxes"])


def test_an_image_is_shown_as_uploaded(web: WebPage, tmp_path: Path):
    data = sample_image("PNG")
    status = web.parse(write(tmp_path, "scan.png", data))
    (expected,) = api_pages(web.url, "scan.png", data)

    assert status == "Done: 1 of 1 page."
    (page,) = web.pages()
    src, width = page_image_size(web, page)
    assert src.startswith("blob:") and width == expected["prunedResult"]["width"]
    assert len(web.all(".box", page)) == len(expected["prunedResult"]["layout_det_res"]["boxes"])


def test_cancel_stops_the_stream_and_the_work(web: WebPage, tmp_path: Path, vlm, triton):
    # 12 pages x 5 regions, 4 VLM calls at a time of 1 s each: about 15 s in all.
    vlm.configure(latency=1.0, max_concurrency=4)
    web.start_parse(write(tmp_path, "long.pdf", sample_pdf(pages=12)))
    web.wait_for(lambda: web.pages_done() >= 1, "the first page", timeout=60)
    web.by_id("parse-cancel").click()
    left_at = time.time()

    web.wait_for(lambda: web.text("parse-status").startswith("Cancelled"), "the cancel to be shown")
    status = web.text("parse-status")
    assert re.fullmatch(r"Cancelled after (\d+) of 12 pages\.", status), status
    shown = len(web.pages())
    assert web.by_id("parse-start").is_enabled() and not web.by_id("parse-cancel").is_enabled()
    assert_work_stopped(web.text("result-log-id"), vlm, triton, left_at=left_at, calls_in_document=60)
    assert len(web.pages()) == shown and web.text("parse-status") == status


def test_formulas_are_drawn_by_katex(web: WebPage, tmp_path: Path, vlm):
    vlm.configure(failures=[
        {"prompt": "Formula Recognition:", "answer": "x = \\frac{a + b}{2c}"},
        {"prompt": "Text Recognition:", "answer": "Energy $E = mc^2$ costs $5 and $6."},
    ])
    web.parse(write(tmp_path, "one.pdf", sample_pdf(pages=1)))
    drawn = web.pages()[0].find_element(By.CSS_SELECTOR, ".page-markdown")

    assert not web.all(".katex-error", drawn)
    (display,) = web.all(".math-display .katex-display", drawn)
    assert web.all(".mfrac", display)  # a real fraction, not the source text
    assert display.find_element(By.CSS_SELECTOR, "annotation").get_property("textContent") == "x = \\frac{a + b}{2c}"
    inline = [k for k in web.all(".katex", drawn) if not web.script("return !!arguments[0].closest('.math-display')", k)]
    assert inline and all(k.find_element(By.CSS_SELECTOR, "annotation").get_property("textContent") == "E = mc^2"
                          for k in inline)
    assert "costs $5 and $6." in drawn.text  # prices stay text
    assert web.script("return document.fonts.check('16px KaTeX_Main')")
