"""OCRFlux's conversion API (/convert/file, /convert/url) end to end: gunicorn →
tritonserver → the VLM stand-in, called the way OCRFlux's API clients call it."""

from __future__ import annotations

import json

import httpx
import pytest

from testkit.documents import sample_image, sample_pdf
from tests.e2e.test_gateway import _FileServer, body_for

pytestmark = pytest.mark.triton


def pdf_file(pages: int = 2) -> dict:
    return {"file": ("report.pdf", sample_pdf(pages), "application/pdf")}


def test_convert_file_gives_the_documents_markdown_with_ocrfluxs_envelope(http, vlm):
    answer = http.post("/convert/file", files=pdf_file(2), data={"skip_cross_page_merge": "true"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["status"], body["format"], body["error"], body["failed_pages"]) == ("success", "markdown", None, [])
    pages = http.post("/layout-parsing", json=body_for(sample_pdf(2))).json()["result"]["layoutParsingResults"]
    assert body["content"] == "\n\n".join(p["markdown"]["text"] for p in pages)
    metadata = body["metadata"]
    assert (metadata["filename"], metadata["pages_processed"], metadata["num_pages"]) == ("report.pdf", 2, 2)
    assert metadata["file_size"] == len(sample_pdf(2)) and metadata["fallback_pages"] == []


def test_text_and_json_formats(http, vlm):
    text = http.post("/convert/file", files=pdf_file(1), data={"output_format": "text"}).json()["content"]
    assert "<table>" not in text and "$$" not in text and not any(line.startswith("#") for line in text.splitlines())
    assert "cell " in text and "text " in text
    answer = http.post("/convert/file", files=pdf_file(2), data={"output_format": "json", "pages": "2"}).json()
    content = answer["content"]
    assert content["num_pages"] == 2 and list(content["page_texts"]) == ["2"] and content["fallback_pages"] == []
    assert content["pages"][0]["prunedResult"]["page_index"] == 1 and content["document_text"]


def test_a_degenerate_page_is_read_again_and_comes_back_clean(http, vlm):
    vlm.configure(failures=[{"prompt": "Text Recognition:", "answer": "and the " * 60, "times": 1}])
    answer = http.post("/convert/file", files={"file": ("p.png", sample_image(), "image/png")},
                       data={"max_page_retries": "1"})
    body = answer.json()
    assert answer.status_code == 200 and body["failed_pages"] == [], body
    assert "and the and the" not in body["content"]
    temperatures = [c["temperature"] for c in vlm.calls() if c["prompt"] == "Text Recognition:"]
    assert 0.1 in temperatures  # the retry sampled a little warmer


def test_pages_still_failing_are_listed_and_marked_in_place(http, vlm):
    vlm.configure(failures=[{"prompt": "Table Recognition:", "status": 500}])
    answer = http.post("/convert/file", files=pdf_file(2), data={"max_page_retries": "1"})
    body = answer.json()
    assert answer.status_code == 200, body
    assert [f["page"] for f in body["failed_pages"]] == [1, 2] == body["metadata"]["fallback_pages"]
    assert all("500" in f["error"] for f in body["failed_pages"])
    assert body["content"].count("was not recognised") == 2  # each failed region marked where it was


@pytest.mark.parametrize(
    ("files", "data", "message"),
    [
        ({"file": ("a.pdf", b"not a document", "application/pdf")}, {}, "not a PDF"),
        (pdf_file(1), {"output_format": "docx"}, "field 'output_format'"),
        (pdf_file(1), {"max_page_retries": "99"}, "field 'max_page_retries'"),
        (pdf_file(1), {"colour": "blue"}, "field 'colour': unknown field"),
    ],
)
def test_bad_conversions_are_errors_in_ocrfluxs_shape(http, files, data, message):
    answer = http.post("/convert/file", files=files, data=data)
    body = answer.json()
    assert answer.status_code == 422, body
    assert body["status"] == "error" and message in body["error"] and body["errorCode"] == 422


def test_convert_url_follows_the_url_rules(start_gateway, vlm):
    files = _FileServer(sample_pdf(pages=1))
    try:
        closed = start_gateway()
        refused = httpx.post(f"{closed.url}/convert/url", json={"url": files.url}, timeout=60)
        assert refused.status_code == 422 and "HPS_ALLOW_URL_INPUT" in refused.json()["error"]
        guarded = start_gateway(allow_url_input=True)
        private = httpx.post(f"{guarded.url}/convert/url", json={"url": files.url}, timeout=60)
        assert private.status_code == 422 and "non-public address" in private.json()["error"]

        trusting = start_gateway(allow_url_input=True, url_allow_private=True)
        answer = httpx.post(f"{trusting.url}/convert/url", timeout=120,
                            json={"url": files.url, "output_format": "markdown", "max_page_retries": 0})
        body = answer.json()
        assert answer.status_code == 200, body
        assert body["metadata"]["url"] == files.url and body["metadata"]["file_size"] == len(sample_pdf(pages=1))
        assert body["content"].strip()
        typo = httpx.post(f"{trusting.url}/convert/url", json={"link": files.url}, timeout=60)
        assert typo.status_code == 422 and "field 'link': unknown field" in typo.json()["error"]
    finally:
        files.close()


def test_both_routes_are_documented(http):
    paths = http.get("/openapi.json").json()["paths"]
    assert {"/convert/file", "/convert/url"} <= set(paths)
    assert "ConvertResponse" in json.dumps(paths["/convert/file"]["post"]["responses"]["200"])
