"""The text layer end to end with a VLM (gunicorn → tritonserver → the VLM stand-in):
with textLayer auto a born-digital page's text regions come from the PDF, exact, and
never reach the VLM; a region whose text layer is broken, and every region of a scanned
page, still does. Without textLayer a VLM server reads everything, as before.
(The CPU engines' default, auto, is tested on `make run`: tests/e2e/test_run_local.py.)"""

from __future__ import annotations

import pytest

from testkit.documents import PARAGRAPH_TITLE_TEXT, TITLE_TEXT
from testkit.text_layers import text_layer_pdf
from tests.e2e.test_gateway import body_for

pytestmark = pytest.mark.triton

PROMPTS = {"text": "Text Recognition:", "table": "Table Recognition:", "formula": "Formula Recognition:"}


def parse(http, kinds: tuple[str, ...], log_id: str, **fields: object) -> list[dict]:
    answer = http.post("/layout-parsing", json={**body_for(text_layer_pdf(*kinds)), "logId": log_id, **fields})
    assert answer.status_code == 200, answer.text
    return [page["prunedResult"] for page in answer.json()["result"]["layoutParsingResults"]]


def blocks(page: dict) -> dict[str, dict]:
    return {b["block_label"]: b for b in page["parsing_res_list"]}


def prompts(vlm, log_id: str) -> list[str]:
    return sorted(c["prompt"] for c in vlm.calls() if c["request_id"] == log_id)


def test_text_regions_come_from_the_pdf_and_only_the_rest_goes_to_the_vlm(http, vlm):
    good, scanned, private_use = parse(http, ("good", "scanned", "private_use"), "tl-auto", textLayer="auto")
    title, paragraph_title, table = blocks(good)["doc_title"], blocks(good)["paragraph_title"], blocks(good)["table"]
    assert (title["block_content"], title["source"]) == (TITLE_TEXT, "text_layer")
    assert (paragraph_title["block_content"], paragraph_title["source"]) == (PARAGRAPH_TITLE_TEXT, "text_layer")
    assert "Layout parsing finds the regions of a page" in blocks(good)["text"]["block_content"]
    assert table["source"].startswith("vlm:")  # a VLM reads tables itself
    assert {b["source"] for b in blocks(scanned).values() if "source" in b} == {table["source"]}
    assert blocks(private_use)["text"]["source"] == table["source"]  # its letters are private-use code points
    assert blocks(private_use)["doc_title"]["source"] == "text_layer"
    # The VLM saw: good: table, formula; scanned: 3 text, table, formula; private_use: text, table, formula.
    assert prompts(vlm, "tl-auto") == sorted([PROMPTS["text"]] * 4 + [PROMPTS["table"]] * 3 + [PROMPTS["formula"]] * 3)


def test_a_vlm_server_reads_everything_unless_asked(http, vlm):
    (page,) = parse(http, ("good",), "tl-default")
    assert {b.get("source") for b in page["parsing_res_list"] if b["block_label"] in ("doc_title", "text")} == {
        blocks(page)["table"]["source"]}
    assert prompts(vlm, "tl-default").count(PROMPTS["text"]) == 3


def test_an_unknown_text_layer_value_is_a_422_naming_the_field_and_values(http, vlm):
    answer = http.post("/layout-parsing", json={**body_for(text_layer_pdf("good")), "textLayer": "yes"})
    assert answer.status_code == 422
    assert "field 'textLayer': Input should be 'auto' or 'off'" in answer.json()["errorMsg"]
    form = http.post("/api/ocr/document", files={"file": ("a.pdf", text_layer_pdf("good"), "application/pdf")},
                     data={"text_layer": "always"})
    assert form.status_code == 422 and "field 'text_layer': Input should be 'auto' or 'off'" in form.json()["error"]


def test_the_glm_ocr_and_ocrflux_forms_pass_text_layer_on(http, vlm):
    document = http.post("/api/ocr/document", files={"file": ("a.pdf", text_layer_pdf("good"), "application/pdf")},
                         data={"text_layer": "auto", "logId": "tl-glm"})
    assert document.status_code == 200, document.text
    assert TITLE_TEXT in document.json()["pages"][0]["text"] and PROMPTS["text"] not in prompts(vlm, "tl-glm")
    converted = http.post("/convert/file", files={"file": ("a.pdf", text_layer_pdf("good"), "application/pdf")},
                          data={"text_layer": "auto", "logId": "tl-flux"})
    assert converted.status_code == 200, converted.text
    assert TITLE_TEXT in converted.json()["content"] and PROMPTS["text"] not in prompts(vlm, "tl-flux")
