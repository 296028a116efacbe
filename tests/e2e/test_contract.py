"""What the gateway sends is what its served /openapi.json says: real answers of every
route, checked against the schema the running gateway publishes."""

from __future__ import annotations

import base64
import json

import httpx
import pytest
from jsonschema import Draft202012Validator

from docparse.cli import sse_events
from testkit.documents import corrupt_pdf, sample_image, sample_pdf

pytestmark = pytest.mark.triton


@pytest.fixture(scope="module")
def openapi(gateway) -> dict:
    return httpx.get(f"{gateway.url}/openapi.json", timeout=30).json()


def validator(openapi: dict, path: str, method: str, status: int, media_type: str) -> Draft202012Validator:
    """A validator for one answer, its references resolved inside the served document."""
    response = openapi["paths"][path][method]["responses"][str(status)]
    schema = response["content"][media_type]["schema"]
    return Draft202012Validator({**schema, "components": openapi["components"]})


def body_for(data: bytes, **options) -> dict:
    return {"file": base64.b64encode(data).decode("ascii"), **options}


def assert_valid(checker: Draft202012Validator, instance: dict) -> None:
    problems = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in checker.iter_errors(instance)]
    assert not problems, problems[:5]


def test_a_parsed_document_matches_the_published_schema(http, openapi, vlm):
    vlm.configure(failures=[{"prompt": "Formula Recognition:", "status": 500}])  # a region with its error
    response = http.post("/layout-parsing", json=body_for(sample_pdf(pages=2), visualize=True))
    assert response.status_code == 200
    answer = response.json()
    assert_valid(validator(openapi, "/layout-parsing", "post", 200, "application/json"), answer)
    page = answer["result"]["layoutParsingResults"][0]
    assert page["inputImage"] and page["outputImages"]["layout_det_res"]  # visualize fills both
    assert any("error" in block for block in page["prunedResult"]["parsing_res_list"])


def test_every_streamed_event_matches_the_published_schema(http, openapi, vlm):
    checker = validator(openapi, "/layout-parsing/stream", "post", 200, "text/event-stream")
    with http.stream("POST", "/layout-parsing/stream", json=body_for(sample_pdf(pages=3))) as response:
        assert response.status_code == 200
        events = list(sse_events(response))
    assert [name for name, _ in events] == ["page", "page", "page", "final"]
    for _, data in events:
        assert_valid(checker, data)
    assert [data["totalPages"] for _, data in events[:3]] == [3, 3, 3]


@pytest.mark.parametrize(
    ("request_body", "status"),
    [({"file": "%%%"}, 422), ({"fiel": "x"}, 422), (body_for(corrupt_pdf()), 422)],
)
def test_errors_match_the_published_schema(http, openapi, request_body, status):
    response = http.post("/layout-parsing", json=request_body)
    assert response.status_code == status
    assert_valid(validator(openapi, "/layout-parsing", "post", status, "application/json"), response.json())


def test_a_body_that_is_not_json_matches_the_published_schema(http, openapi):
    response = http.post("/layout-parsing", content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert_valid(validator(openapi, "/layout-parsing", "post", 400, "application/json"), response.json())


def test_health_answers_match_the_published_schema(http, openapi):
    for path in ("/health", "/health/ready"):
        response = http.get(path)
        assert response.status_code == 200
        assert_valid(validator(openapi, path, "get", 200, "application/json"), response.json())


def test_the_schema_is_the_contract_not_a_loose_description(openapi):
    """A field the models do not define is refused by the published schema, so these
    checks would catch an answer that drifted from it."""
    checker = validator(openapi, "/layout-parsing", "post", 200, "application/json")
    drifted = json.loads(json.dumps(SMALL_ANSWER))
    drifted["result"]["layoutParsingResults"][0]["markdown"]["surprise"] = 1
    assert_valid(checker, SMALL_ANSWER)
    assert list(checker.iter_errors(drifted))


SMALL_ANSWER = {
    "logId": "x",
    "errorCode": 0,
    "errorMsg": "Success",
    "result": {
        "layoutParsingResults": [
            {
                "prunedResult": {
                    "page_index": 0,
                    "width": 10,
                    "height": 10,
                    "model_settings": {"use_layout_detection": True, "layout_model": "m", "recognizer": "r"},
                    "parsing_res_list": [],
                    "layout_det_res": {"boxes": []},
                },
                "markdown": {"text": "", "images": {}, "isStart": True, "isEnd": True},
                "outputImages": None,
                "inputImage": None,
                "regions": {"recognized": 0, "failed": 0},
            }
        ],
        "dataInfo": {"type": "image", "numPages": 1, "pages": [{"width": 10, "height": 10}]},
        "summary": {"pages": 1, "failedPages": 0, "recognizedRegions": 0, "failedRegions": 0},
    },
}


def test_an_image_upload_matches_too(http, openapi):
    response = http.post("/layout-parsing", files={"file": ("page.png", sample_image("PNG"))})
    assert response.status_code == 200
    assert_valid(validator(openapi, "/layout-parsing", "post", 200, "application/json"), response.json())


def test_every_jobs_answer_matches_the_published_schema(http, openapi, vlm):
    submitted = http.post("/jobs", json=body_for(sample_pdf(pages=2)))
    assert submitted.status_code == 202
    assert_valid(validator(openapi, "/jobs", "post", 202, "application/json"), submitted.json())
    job_path = f"/jobs/{submitted.json()['jobId']}"
    with http.stream("GET", f"{job_path}/events") as response:
        events = list(sse_events(response))
    assert [name for name, _ in events][-1] == "final" and "page" in [name for name, _ in events]
    for _, data in events:
        assert_valid(validator(openapi, "/jobs/{job_id}/events", "get", 200, "text/event-stream"), data)
    assert_valid(validator(openapi, "/jobs/{job_id}", "get", 200, "application/json"), http.get(job_path).json())
    result = http.get(f"{job_path}/result").json()
    assert_valid(validator(openapi, "/jobs/{job_id}/result", "get", 200, "application/json"), result)
    assert_valid(validator(openapi, "/jobs", "get", 200, "application/json"), http.get("/jobs").json())
    assert_valid(validator(openapi, "/jobs/{job_id}", "delete", 200, "application/json"), http.delete(job_path).json())
    missing = http.get("/jobs/nothing-here")
    assert missing.status_code == 404
    assert_valid(validator(openapi, "/jobs/{job_id}", "get", 404, "application/json"), missing.json())


# --- the GLM-OCR server's API -------------------------------------------------------------


def ocr_image() -> dict:
    return {"image": ("page.png", sample_image(), "image/png")}


@pytest.mark.parametrize(
    ("path", "files", "data"),
    [
        ("/api/ocr/recognize", ocr_image(), {"task": "table"}),
        ("/api/ocr/extract", ocr_image(), {"schema": '{"name": "", "lines": [{"qty": 0}]}'}),
        ("/api/ocr/batch", [("images", ("a.png", sample_image(), "image/png")), ("images", ("b.png", b"x", "image/png"))], {}),
        ("/api/ocr/document", {"file": ("d.pdf", sample_pdf(pages=2), "application/pdf")}, {"pages": "all"}),
    ],
)
def test_glm_ocr_answers_match_the_published_schema(http, openapi, vlm, path, files, data):
    response = http.post(path, files=files, data=data)
    assert response.status_code == 200, response.text
    assert_valid(validator(openapi, path, "post", 200, "application/json"), response.json())


def test_glm_ocr_stream_events_and_errors_match_the_published_schema(http, openapi, vlm):
    path = "/api/ocr/document/stream"
    checker = validator(openapi, path, "post", 200, "text/event-stream")
    with http.stream("POST", path, files={"file": ("d.pdf", sample_pdf(pages=2), "application/pdf")}) as response:
        events = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]
    assert [e["type"] for e in events] == ["start", "page", "page", "complete"]
    for event in events:
        assert_valid(checker, event)
    refused = http.post(path, files={"file": ("d.pdf", corrupt_pdf(), "application/pdf")})
    assert refused.status_code == 422
    assert_valid(validator(openapi, path, "post", 422, "application/json"), refused.json())
    info = http.get("/api/info")
    assert_valid(validator(openapi, "/api/info", "get", 200, "application/json"), info.json())
