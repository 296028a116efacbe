"""The GLM-OCR server's API (/api/ocr/*, /api/info) end to end: gunicorn → tritonserver →
the VLM stand-in, called the way that server's clients call it (multipart forms)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import jsonschema
import pytest

from docparse.extraction import DEFAULT_PROMPT
from testkit.documents import sample_image, sample_pdf
from tests.conftest import VLM_CONCURRENCY
from tests.e2e.test_gateway import body_for

pytestmark = pytest.mark.triton

INVOICE_SCHEMA = {
    "type": "object",
    "properties": {
        "number": {"type": "string"},
        "total": {"type": "number", "minimum": 0},
        "paid": {"type": "boolean"},
        "items": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
    },
    "required": ["number", "total", "items"],
}


def png() -> tuple[str, bytes, str]:
    return ("page.png", sample_image(), "image/png")


def recognized(http: httpx.Client, task: str) -> dict:
    answer = http.post("/api/ocr/recognize", files={"image": png()}, data={"task": task})
    assert answer.status_code == 200, answer.text
    return answer.json()


def whole_image_block(http: httpx.Client, prompt_label: str) -> str:
    """What /layout-parsing reads in the same image taken as one region."""
    body = body_for(sample_image(), useLayoutDetection=False, promptLabel=prompt_label)
    result = http.post("/layout-parsing", json=body).json()["result"]
    return result["layoutParsingResults"][0]["prunedResult"]["parsing_res_list"][0]["block_content"]


@pytest.mark.parametrize(
    ("task", "prompt_label", "looks_like"),
    [("text", "ocr", "text "), ("formula", "formula", "\\frac{a}{b}"), ("table", "table", "<table>")],
)
def test_recognize_reads_the_image_with_the_tasks_prompt(http, vlm, task, prompt_label, looks_like):
    answer = recognized(http, task)
    assert answer["task"] == task and answer["time"] > 0 and answer["logId"]
    assert answer["text"].startswith(looks_like) and "$$" not in answer["text"]
    assert answer["text"] == whole_image_block(http, prompt_label)
    prompts = {call["prompt"] for call in vlm.calls()}
    assert prompts == {f"{task.capitalize()} Recognition:"}


@pytest.mark.parametrize(
    ("route", "files", "data", "status", "message"),
    [
        ("/api/ocr/recognize", {"image": png()}, {"task": "poem"}, 422, "field 'task'"),
        ("/api/ocr/recognize", {"picture": png()}, {}, 422, "field 'picture': unknown field"),
        ("/api/ocr/recognize", {"other": png()}, {"task": "text"}, 422, "field 'other'"),
        ("/api/ocr/recognize", {"image": ("a.png", b"not an image", "image/png")}, {}, 422, "image"),
        ("/api/ocr/recognize", {"image": ("a.png", b"", "image/png")}, {}, 422, "field 'image': the file is empty"),
        ("/api/ocr/extract", {"image": png()}, {}, 422, "field 'schema'"),
        ("/api/ocr/extract", {"image": png()}, {"schema": "{not json"}, 422, "field 'schema': not valid JSON"),
        ("/api/ocr/extract", {"image": png()}, {"schema": '{"type": "object", "properties": {"a": {"type": "text"}}}'}, 422,
         "not a valid JSON Schema"),
        ("/api/ocr/document", {"pages": (None, "1")}, {}, 422, "field 'file': required"),
        ("/api/ocr/document", {"file": ("d.pdf", sample_pdf(2), "application/pdf")}, {"pages": "9"}, 422, "page"),
        ("/api/ocr/batch", {"task": (None, "text")}, {}, 422, "field 'images': required"),
    ],
)
def test_bad_requests_get_their_status_and_a_named_problem(http, route, files, data, status, message):
    answer = http.post(route, files=files, data=data)
    body = answer.json()
    assert answer.status_code == status, body
    assert message in body["error"] and body["errorMsg"] == body["error"] and body["errorCode"] == status


def test_a_json_body_is_refused_in_favour_of_a_form(http):
    answer = http.post("/api/ocr/recognize", json={"image": "x"})
    assert answer.status_code == 400 and "multipart/form-data" in answer.json()["error"]


@pytest.mark.parametrize("schema", [INVOICE_SCHEMA, {"number": "", "total": 0, "items": [{"name": ""}]}])
def test_extract_asks_with_the_schema_and_answers_data_that_fits_it(http, vlm, schema):
    answer = http.post("/api/ocr/extract", files={"image": png()}, data={"schema": json.dumps(schema)})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    jsonschema.validate(body["data"], INVOICE_SCHEMA)
    assert json.loads(body["raw"]) == body["data"] and body["time"] > 0
    (call,) = vlm.calls()
    assert call["prompt"].startswith(DEFAULT_PROMPT + "\n")  # GLM-OCR's prompt, then the template
    template = json.loads(call["prompt"].removeprefix(DEFAULT_PROMPT))
    assert template["items"] == [{"name": ""}] and template["number"] == template["total"] == ""
    assert call["json_schema"]["properties"].keys() == template.keys()  # guided decoding asked


def test_an_answer_that_does_not_fit_is_asked_again_once(http, vlm):
    vlm.configure(failures=[{"answer": '{"number": 5}', "times": 1}])
    answer = http.post("/api/ocr/extract", files={"image": png()}, data={"schema": json.dumps(INVOICE_SCHEMA)})
    assert answer.status_code == 200, answer.text
    first, second = vlm.calls()
    assert (first["temperature"], second["temperature"]) == (0, 0.3)


def test_an_answer_that_never_fits_is_a_422_with_the_raw_answer(http, vlm):
    vlm.configure(failures=[{"answer": "Invoice 12, total 5", "times": 2}])
    answer = http.post("/api/ocr/extract", files={"image": png()}, data={"schema": json.dumps(INVOICE_SCHEMA)})
    body = answer.json()
    assert answer.status_code == 422, body
    assert body["raw"] == "Invoice 12, total 5" and "not JSON" in body["error"]
    assert len(vlm.calls()) == 2


def test_batch_reads_every_image_at_once_and_keeps_a_bad_one_to_itself(http, vlm):
    vlm.configure(latency=0.3)
    images = [("images", png()) for _ in range(6)]
    images.insert(2, ("images", ("notes.txt", b"these are not pixels", "text/plain")))
    answer = http.post("/api/ocr/batch", files=images, data={"task": "text"})
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [r["index"] for r in results] == list(range(7))
    assert results[2]["errorCode"] == 422 and "text" not in results[2]
    assert all(r["text"].startswith("text ") for i, r in enumerate(results) if i != 2)
    assert answer.json()["throughput"].endswith(" imgs/s")
    calls = vlm.calls()
    started, finished = max(c["started"] for c in calls), min(c["finished"] for c in calls)
    assert len(calls) == 6 and started < finished  # all six were in the VLM at one moment


def test_a_batch_past_its_limit_is_a_413(start_gateway):
    server = start_gateway(max_batch_images=2)
    images = [("images", png()) for _ in range(3)]
    answer = httpx.post(server.url + "/api/ocr/batch", files=images, timeout=60)
    assert answer.status_code == 413 and "HPS_MAX_BATCH_IMAGES" in answer.json()["error"]


def test_document_pages_have_the_markdown_of_layout_parsing(http, vlm):
    pdf = sample_pdf(3)
    answer = http.post("/api/ocr/document", files={"file": ("doc.pdf", pdf, "application/pdf")}, data={"pages": "2-3"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["total_pages"], body["parsed_pages"]) == (3, 2)
    reference = http.post("/layout-parsing", json=body_for(pdf, pages="2-3")).json()["result"]["layoutParsingResults"]
    for page, expected in zip(body["pages"], reference, strict=True):
        pruned = expected["prunedResult"]
        assert page["text"] == expected["markdown"]["text"]
        assert page["page_number"] == pruned["page_index"] + 1 and page["width"] == pruned["width"]
        assert [r["text"] for r in page["regions"]] == [b["block_content"] for b in pruned["parsing_res_list"]]
        assert page["region_count"] == len(page["regions"]) > 0
        assert {r["task"] for r in page["regions"]} >= {"text", "table", "formula"}


def test_document_without_layout_reads_each_page_whole(http, vlm):
    form = {"enable_layout": "false", "task": "text", "dpi": "72"}
    answer = http.post("/api/ocr/document", files={"file": ("p.png", sample_image(), "image/png")}, data=form)
    (page,) = answer.json()["pages"]
    assert [r["label"] for r in page["regions"]] == ["text"] and page["text"] == page["regions"][0]["text"]


def test_document_stream_sends_start_pages_then_complete(http, vlm):
    pdf = sample_pdf(3)
    events = []
    with http.stream("POST", "/api/ocr/document/stream", files={"file": ("doc.pdf", pdf, "application/pdf")}) as answer:
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/event-stream")
        for line in answer.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    assert [e["type"] for e in events] == ["start", "page", "page", "page", "complete"]
    assert (events[0]["total_pages"], events[0]["pages_to_parse"]) == (3, 3)
    assert [e["progress"] for e in events[1:4]] == ["1/3", "2/3", "3/3"]
    assert [e["page_number"] for e in events[1:4]] == [1, 2, 3]
    unary = http.post("/api/ocr/document", files={"file": ("doc.pdf", pdf, "application/pdf")}).json()
    assert [e["text"] for e in events[1:4]] == [p["text"] for p in unary["pages"]]


def test_document_stream_errors_before_the_first_page_are_plain_answers(http):
    answer = http.post("/api/ocr/document/stream", files={"file": ("d.pdf", b"%PDF-1.7 broken", "application/pdf")})
    assert answer.status_code == 422 and answer.json()["error"]


def test_info_names_the_model_and_what_it_can_do(http):
    info = http.get("/api/info").json()
    assert info["model"] == "glm-ocr" and info["layout_detection"] is True
    assert "Information Extraction (JSON schema)" in info["features"]
    assert "POST /api/ocr/document/stream" in info["endpoints"]


def test_all_apis_together_stay_within_the_one_vlm_bound(http, vlm):
    """A batch, documents and single images at once: the VLM never sees more calls in
    flight than the orchestrator's one process-wide bound. Slow calls (2 s) keep them all
    waiting at the bound however slowly this machine sends them."""
    vlm.configure(latency=2.0)

    def batch() -> int:
        return http.post("/api/ocr/batch", files=[("images", png()) for _ in range(40)]).status_code

    def document() -> int:
        return http.post("/api/ocr/document", files={"file": ("d.pdf", sample_pdf(3), "application/pdf")}).status_code

    def layout_parsing() -> int:
        return http.post("/layout-parsing", json=body_for(sample_pdf(3))).status_code

    with ThreadPoolExecutor(4) as pool:
        statuses = [f.result() for f in [pool.submit(batch), pool.submit(document), pool.submit(layout_parsing)]]
    assert statuses == [200, 200, 200]
    calls = [c for c in vlm.calls() if c["started"]]
    peak = max(sum(1 for c in calls if c["started"] <= t < c["finished"]) for t in (c["started"] for c in calls))
    assert VLM_CONCURRENCY // 2 < peak <= VLM_CONCURRENCY


def test_layout_parsing_extracts_too_with_json_schema_on_whole_pages(http, vlm):
    body = body_for(sample_pdf(2), useLayoutDetection=False, jsonSchema=INVOICE_SCHEMA)
    pages = http.post("/layout-parsing", json=body).json()["result"]["layoutParsingResults"]
    for page in pages:
        (block,) = page["prunedResult"]["parsing_res_list"]
        jsonschema.validate(json.loads(block["block_content"]), INVOICE_SCHEMA)
    refused = http.post("/layout-parsing", json=body_for(sample_pdf(1), jsonSchema=INVOICE_SCHEMA))
    assert refused.status_code == 422 and "set useLayoutDetection to false" in refused.json()["errorMsg"]
