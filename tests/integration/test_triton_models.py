"""Every Triton model on a real tritonserver, over gRPC (unary and streaming) and HTTP."""

from __future__ import annotations

import io
import json
import math
import queue
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from PIL import Image
from tritonclient.utils import InferenceServerException

from docparse.client import TritonLayoutClient, request_for
from docparse.errors import InvalidRequestError
from docparse.responses import LayoutParsingResponse
from testkit.documents import corrupt_pdf, nested_forms_pdf, sample_image, sample_pdf

pytestmark = pytest.mark.triton

A4_144DPI = (1684, 1191)  # rows, columns of an A4 page rendered at 144 dpi


def json_input(name: str, value: object, shape: list[int], module=grpcclient):
    tensor = module.InferInput(name, shape, "BYTES")
    data = json.dumps(value).encode() if not isinstance(value, bytes) else value
    tensor.set_data_from_numpy(np.array([data], dtype=np.object_).reshape(shape))
    return tensor


def stream_model(triton, model: str, inputs: list, everything: bool = False) -> list:
    """The responses of one streamed request that carry outputs (or raise its error);
    with ``everything``, empty ones too."""
    results: queue.Queue = queue.Queue()
    grpc = grpcclient.InferenceServerClient(triton.grpc_url)
    grpc.start_stream(callback=lambda result, error: results.put((result, error)))
    try:
        grpc.async_stream_infer(model, inputs, enable_empty_final_response=True)
        responses = []
        while True:
            result, error = results.get(timeout=60)
            if error is not None:
                raise error
            if result.get_response().outputs or everything:
                responses.append(result)
            if result.get_response().parameters["triton_final_response"].bool_param:
                return responses
    finally:
        grpc.stop_stream()
        grpc.close()


def model_stats(triton, model: str) -> dict:
    with urllib.request.urlopen(f"http://{triton.http_url}/v2/models/{model}/stats") as response:
        return json.load(response)["model_stats"][0]


def client(triton) -> TritonLayoutClient:
    return TritonLayoutClient(triton.grpc_url, timeout=120)


# --- pdf_render ---------------------------------------------------------------------


def test_pdf_render_streams_one_response_per_selected_page(triton):
    data = np.frombuffer(sample_pdf(pages=3), dtype=np.uint8)
    document = grpcclient.InferInput("document", list(data.shape), "UINT8")
    document.set_data_from_numpy(data)
    options = json_input("options", {"pages": "1,3"}, [1])

    responses = stream_model(triton, "pdf_render", [document, options])

    pages = [json.loads(r.as_numpy("page")[0]) for r in responses]
    assert [p["index"] for p in pages] == [0, 2]
    assert all(p["kind"] == "pdf" and p["pageCount"] == 3 for p in pages)
    assert responses[0].as_numpy("image").shape[:2] == A4_144DPI


def test_pdf_render_sends_pages_as_jpegs_at_the_size_asked_for(triton):
    """For pages a VLM reads whole: rendered at its pixel budget, JPEG-encoded in the
    renderer, with the size the page has at the dpi."""
    data = np.frombuffer(sample_pdf(pages=2), dtype=np.uint8)
    document = grpcclient.InferInput("document", list(data.shape), "UINT8")
    document.set_data_from_numpy(data)
    options = json_input("options", {"jpegMaxPixels": 1_000_000}, [1])

    responses = stream_model(triton, "pdf_render", [document, options])

    for response in responses:
        page = json.loads(response.as_numpy("page")[0])
        assert (page["height"], page["width"]) == A4_144DPI
        with Image.open(io.BytesIO(response.as_numpy("encoded").tobytes())) as jpeg:
            assert jpeg.format == "JPEG" and jpeg.size == (page["encodedWidth"], page["encodedHeight"])
            assert jpeg.width * jpeg.height <= 1_000_000 and jpeg.width == pytest.approx(1191 * math.sqrt(1_000_000 / (1191 * 1684)), abs=2)


def test_pdf_render_renders_only_the_window_asked_for(triton):
    data = np.frombuffer(sample_pdf(pages=5), dtype=np.uint8)
    document = grpcclient.InferInput("document", list(data.shape), "UINT8")
    document.set_data_from_numpy(data)
    options = json_input("options", {"pages": "2-5", "start": 1, "limit": 2}, [1])

    pages = [json.loads(r.as_numpy("page")[0]) for r in stream_model(triton, "pdf_render", [document, options])]

    assert [p["index"] for p in pages] == [2, 3]  # the 2nd and 3rd of the selected pages 2-5
    assert all(p["selected"] == 4 for p in pages)

    # The last page closes the stream itself: no empty response after it.
    messages = stream_model(triton, "pdf_render", [document, options], everything=True)
    assert len(messages) == 2
    assert messages[-1].get_response().parameters["triton_final_response"].bool_param


def test_a_document_longer_than_the_render_window_keeps_every_selected_page(triton, vlm):
    # The orchestrator asks pdf_render for HPS_RENDER_WINDOW (4) pages at a time.
    request = request_for(sample_pdf(pages=19), logId="windows", useLayoutDetection=False, pages="2-19")
    events = list(client(triton).stream(request))

    assert [e.pageIndex for e in events[:-1]] == list(range(1, 19))
    assert all(e.totalPages == 18 for e in events[:-1])
    assert events[-1].type == "final" and len(events[-1].dataInfo.pages) == 18


def test_pdf_render_names_the_problem_with_a_corrupt_pdf(triton):
    data = np.frombuffer(corrupt_pdf(), dtype=np.uint8)
    document = grpcclient.InferInput("document", list(data.shape), "UINT8")
    document.set_data_from_numpy(data)
    with pytest.raises(InferenceServerException, match="PDF"):
        stream_model(triton, "pdf_render", [document])


def test_pdf_render_abandons_a_page_past_its_time_limit_while_others_render(triton):
    """A page that pdfium would take 9 s over (nested_forms_pdf) is abandoned after
    HPS_RENDER_TIMEOUT (2 s for the tests' tritonserver) with a 422 naming it, and
    another document's pages come meanwhile: rendering runs in pdf_render's worker
    processes, and the stopped one is replaced."""

    def pages_of(data: bytes) -> list:
        document = grpcclient.InferInput("document", [len(data)], "UINT8")
        document.set_data_from_numpy(np.frombuffer(data, dtype=np.uint8))
        return stream_model(triton, "pdf_render", [document])

    with ThreadPoolExecutor(1) as thread:
        started = time.monotonic()
        stuck = thread.submit(pages_of, nested_forms_pdf(6))
        assert len(pages_of(sample_pdf(pages=2))) == 2
        assert not stuck.done(), "the other document waited for the slow page"
        with pytest.raises(InferenceServerException, match=r"\[422\] page 1 of the PDF took longer than 2 s"):
            stuck.result()
    assert time.monotonic() - started < 10
    assert len(pages_of(sample_pdf(pages=1))) == 1


# --- layout_detection ----------------------------------------------------------------


def page_array(height: int = 800, width: int = 600) -> np.ndarray:
    return np.full((1, height, width, 3), 255, dtype=np.uint8)


def test_layout_detection_over_http_scales_boxes_to_the_page(triton):
    http = httpclient.InferenceServerClient(triton.http_url)
    image = httpclient.InferInput("image", [1, 800, 600, 3], "UINT8")
    image.set_data_from_numpy(page_array())
    result = http.infer("layout_detection", [image])
    boxes = json.loads(result.as_numpy("boxes").reshape(-1)[0])
    labels = {b["label"] for b in boxes}
    assert {"doc_title", "table", "display_formula", "image"} <= labels
    assert all(0 <= b["coordinate"][0] <= b["coordinate"][2] <= 600 for b in boxes)
    assert all(0 <= b["coordinate"][1] <= b["coordinate"][3] <= 800 for b in boxes)


def test_layout_detection_threshold_option_over_grpc(triton):
    grpc = grpcclient.InferenceServerClient(triton.grpc_url)

    def boxes(options: dict) -> list:
        image = grpcclient.InferInput("image", [1, 800, 600, 3], "UINT8")
        image.set_data_from_numpy(page_array())
        result = grpc.infer("layout_detection", [image, json_input("options", options, [1, 1])])
        return json.loads(result.as_numpy("boxes").reshape(-1)[0])

    assert len(boxes({"layoutThreshold": 0.1})) == len(boxes({"layoutThreshold": 0.5})) + 1


def test_layout_detection_refuses_bad_options_and_keeps_serving(triton):
    grpc = grpcclient.InferenceServerClient(triton.grpc_url)
    image = grpcclient.InferInput("image", [1, 100, 100, 3], "UINT8")
    image.set_data_from_numpy(page_array(100, 100))
    with pytest.raises(InferenceServerException, match="layoutTreshold"):
        grpc.infer("layout_detection", [image, json_input("options", {"layoutTreshold": 0.3}, [1, 1])])
    with pytest.raises(InferenceServerException, match="not valid JSON"):
        grpc.infer("layout_detection", [image, json_input("options", b"{oops", [1, 1])])
    assert grpc.infer("layout_detection", [image]).as_numpy("boxes") is not None


def settled_stats(triton, model: str, timeout: float = 10.0) -> dict:
    """The model's statistics once the counts of earlier requests have landed (Triton
    updates them just after it answers): two reads 0.2 s apart that agree."""
    deadline = time.monotonic() + timeout
    stats = model_stats(triton, model)
    while time.monotonic() < deadline:
        time.sleep(0.2)
        again = model_stats(triton, model)
        if again["inference_count"] == stats["inference_count"]:
            return again
        stats = again
    raise AssertionError(f"{model}'s statistics kept changing for {timeout} s")


def test_layout_detection_batches_concurrent_pages(triton):
    before = settled_stats(triton, "layout_detection")

    def one(size: int) -> None:
        grpc = grpcclient.InferenceServerClient(triton.grpc_url)
        image = grpcclient.InferInput("image", [1, 400 + size, 300 + size, 3], "UINT8")
        image.set_data_from_numpy(page_array(400 + size, 300 + size))
        grpc.infer("layout_detection", [image])

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, range(32)))
    # Triton updates the statistics just after it sends the responses: wait for them.
    deadline = time.monotonic() + 10
    while True:
        after = model_stats(triton, "layout_detection")
        inferences = after["inference_count"] - before["inference_count"]
        executions = after["execution_count"] - before["execution_count"]
        if inferences >= 32 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert inferences == 32
    assert executions < inferences, "pages of different sizes should share forward passes"


# --- layout-parsing-stream -------------------------------------------------------------


def test_three_page_pdf_streams_three_pages_then_the_final(triton, vlm):
    events = list(client(triton).stream(request_for(sample_pdf(pages=3), logId="three-pages")))

    assert [e.type for e in events] == ["page", "page", "page", "final"]
    assert [e.pageIndex for e in events[:3]] == [0, 1, 2]
    final = events[-1]
    assert final.logId == "three-pages"
    assert final.dataInfo.type == "pdf" and final.dataInfo.numPages == 3
    page = events[0].result
    markdown = page.markdown.text
    assert markdown.startswith("# text ")  # doc_title became a heading
    assert "\n## text " in markdown and "<table>" in markdown and "$$\n\\frac{a}{b}" in markdown
    assert len(page.markdown.images) == 1  # the figure crop
    labels = [b.block_label for b in page.prunedResult.parsing_res_list]
    assert labels[:3] == ["header", "doc_title", "text"]


def test_the_document_may_come_as_bytes_beside_the_json(triton, vlm):
    """An engineer's gRPC client (and the gateway) may send the file in the ``file``
    input instead of base64 in the JSON."""
    data = np.frombuffer(sample_pdf(pages=2), dtype=np.uint8)
    file = grpcclient.InferInput("file", list(data.shape), "UINT8")
    file.set_data_from_numpy(data)
    body = json_input("input", {"logId": "bytes-in", "useLayoutDetection": False}, [1])

    responses = stream_model(triton, "layout-parsing-stream", [body, file])

    events = [json.loads(r.as_numpy("output")[0]) for r in responses]
    assert [e["type"] for e in events] == ["page", "page", "final"]
    assert events[-1]["dataInfo"]["type"] == "pdf" and events[-1]["logId"] == "bytes-in"


def test_the_vlm_gets_the_right_prompt_for_each_region_type(triton, vlm):
    list(client(triton).stream(request_for(sample_pdf(pages=2), logId="prompts")))

    calls = [c for c in vlm.calls() if c["request_id"] == "prompts"]
    prompts = sorted(c["prompt"] for c in calls)
    # Per page: doc_title, text, paragraph_title -> text; table; display_formula.
    # header, number (dropped) and image (kept as a crop) are never sent.
    assert prompts == sorted(
        ["Text Recognition:"] * 6 + ["Table Recognition:"] * 2 + ["Formula Recognition:"] * 2
    )
    assert all(c["width"] % 28 == 0 and c["height"] % 28 == 0 for c in calls)


def test_a_failed_region_leaves_the_rest_of_its_page(triton, vlm):
    vlm.configure(failures=[{"prompt": "Formula Recognition:", "status": 500}])

    events = list(client(triton).stream(request_for(sample_pdf(pages=1))))

    page = events[0].result
    blocks = {b.block_label: b for b in page.prunedResult.parsing_res_list}
    assert "500" in blocks["display_formula"].error
    assert blocks["table"].block_content.startswith("<table>")
    assert blocks["doc_title"].block_content.startswith("text ")
    assert "<table>" in page.markdown.text
    assert "was not recognised" in page.markdown.text


def test_pages_stream_while_later_pages_are_still_recognised(triton, vlm):
    vlm.configure(latency=0.25, max_concurrency=64, failures=[])
    arrivals = []
    for event in client(triton).stream(request_for(sample_pdf(pages=4), logId="pipelined")):
        arrivals.append((event.type, time.time()))
    first_page_at = arrivals[0][1]
    calls = [c for c in vlm.calls() if c["request_id"] == "pipelined"]
    assert max(c["finished"] for c in calls) > first_page_at, "page 1 arrived only after all work"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"file": "%%%"}, "not valid base64"),
        ({"fiel": "abc"}, "fiel"),
        ({"file": "aGVsbG8=", "layoutThreshold": "high"}, "layoutThreshold"),
        ({"file": "aGVsbG8="}, "not a PDF or a supported image"),
    ],
)
def test_stream_refuses_bad_requests_with_a_clear_message(triton, body, message):
    with pytest.raises(InvalidRequestError, match=message):
        list(client(triton).stream(body))


def test_page_outside_the_document_is_refused(triton):
    with pytest.raises(InvalidRequestError, match="3"):
        list(client(triton).stream(request_for(sample_pdf(pages=3), pages="5")))


def test_image_input_is_one_page(triton, vlm):
    events = list(client(triton).stream(request_for(sample_image("PNG"))))
    assert [e.type for e in events] == ["page", "final"]
    assert events[-1].dataInfo.type == "image"


# --- layout-parsing (unary, PaddleX HPS protocol) ------------------------------------------


def test_unary_model_speaks_the_paddlex_hps_protocol(triton, vlm):
    grpc = grpcclient.InferenceServerClient(triton.grpc_url)
    body = request_for(sample_pdf(pages=2), logId="paddlex-client")
    result = grpc.infer("layout-parsing", [json_input("input", body, [1, 1])])
    envelope = json.loads(result.as_numpy("output")[0, 0])

    assert envelope["errorCode"] == 0 and envelope["errorMsg"] == "Success"
    assert envelope["logId"] == "paddlex-client"
    assert len(envelope["result"]["layoutParsingResults"]) == 2
    assert envelope["result"]["dataInfo"]["numPages"] == 2


def test_unary_model_over_http(triton, vlm):
    http = httpclient.InferenceServerClient(triton.http_url)
    body = request_for(sample_image("JPEG"))
    result = http.infer("layout-parsing", [json_input("input", body, [1, 1], httpclient)])
    envelope = json.loads(result.as_numpy("output")[0, 0])
    assert envelope["errorCode"] == 0
    assert envelope["result"]["layoutParsingResults"][0]["markdown"]["text"]


def test_unary_model_reports_errors_in_the_envelope(triton):
    grpc = grpcclient.InferenceServerClient(triton.grpc_url)
    body = request_for(corrupt_pdf(), logId="broken")
    result = grpc.infer("layout-parsing", [json_input("input", body, [1, 1])])
    envelope = json.loads(result.as_numpy("output")[0, 0])
    assert envelope == {"logId": "broken", "errorCode": 422, "errorMsg": envelope["errorMsg"]}
    assert "PDF" in envelope["errorMsg"]
    # The Python client raises the envelope's error as ours, with its status.
    with pytest.raises(InvalidRequestError, match="PDF") as raised:
        client(triton).parse(body)
    assert raised.value.status == 422


def test_unary_model_works_on_many_documents_at_once(triton, vlm):
    vlm.configure(latency=1.0, max_concurrency=64, failures=[])
    pdf = sample_pdf(pages=1)

    def parse(i: int) -> LayoutParsingResponse:
        return client(triton).parse(request_for(pdf, logId=f"parallel-{i}"))

    with ThreadPoolExecutor(8) as pool:
        envelopes = list(pool.map(parse, range(8)))
    assert [e.logId for e in envelopes] == [f"parallel-{i}" for i in range(8)]

    calls = [c for c in vlm.calls() if c["request_id"].startswith("parallel-")]
    # Each document's span at the VLM, from its first call to its last answer. Served one
    # at a time, the spans would not overlap; served together, all 8 share a moment.
    spans = {}
    for c in calls:
        first, last = spans.get(c["request_id"], (c["started"], c["finished"]))
        spans[c["request_id"]] = (min(first, c["started"]), max(last, c["finished"]))
    peak = max(sum(1 for a, b in spans.values() if a <= t < b) for t, _ in spans.values())
    assert len(spans) == 8 and peak == 8, f"only {peak} of 8 documents were in flight together"


def test_restructure_pages_takes_paddlex_pruned_results_and_answers_in_the_envelope(triton):
    """A PaddleX client's pages, with fields ours do not have (group_id, polygon points,
    input_path), restructured over gRPC: the table continued on page 2 lands on page 1."""
    from testkit import pages as gen

    pages = []
    for page in gen.document(
        [gen.text("Results below."), gen.table(gen.html_table([["North", "12"]], header=["Region", "Sales"]))],
        [gen.table(gen.html_table([["South", "9"]], header=["Region", "Sales"])), gen.text("The end.")],
    ):
        pruned = page.prunedResult.model_dump(mode="json", exclude_none=True)
        for block in pruned["parsing_res_list"]:
            block.update(group_id=block["block_id"], block_polygon_points=[[0, 0], [1, 1]])
        pruned["layout_det_res"]["input_path"] = None
        pages.append({"prunedResult": pruned, "markdownImages": {}})
    grpc = grpcclient.InferenceServerClient(triton.grpc_url)
    result = grpc.infer("restructure-pages", [json_input("input", {"pages": pages, "logId": "restr"}, [1, 1])])
    envelope = json.loads(result.as_numpy("output")[0, 0])
    assert (envelope["errorCode"], envelope["logId"]) == (0, "restr")
    first, second = (p["markdown"]["text"] for p in envelope["result"]["layoutParsingResults"])
    assert first.count("Region") == 1 and "South" in first and "<table>" not in second

    refused = grpc.infer("restructure-pages", [json_input("input", {"pages": "none"}, [1, 1])])
    error = json.loads(refused.as_numpy("output")[0, 0])
    assert error["errorCode"] == 422 and "field 'pages'" in error["errorMsg"]


# --- VLM servers on Triton's metrics port ------------------------------------------------


def endpoint_lines(triton) -> list[str]:
    with urllib.request.urlopen(triton.metrics_url, timeout=10) as response:
        return [line for line in response.read().decode().splitlines() if line.startswith("hps_vlm_endpoint_")]


def test_each_vlm_server_shows_on_tritons_metrics_port(triton, vlm):
    """The orchestrator's VLM servers (issue #20): in rotation, calls in flight, calls and
    failures, labelled with the profile and the server's URL (copied every 2 s)."""
    list(client(triton).stream(request_for(sample_image(), logId="metrics", useLayoutDetection=False)))
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        lines = endpoint_lines(triton)
        calls = [line for line in lines if line.startswith("hps_vlm_endpoint_calls_total{")]
        if calls and float(calls[0].rsplit(" ", 1)[1]) > 0:
            break
        time.sleep(0.5)
    assert any(f'endpoint="{vlm.url}"' in line for line in calls), lines
    assert float(calls[0].rsplit(" ", 1)[1]) >= 1
    up = next(line for line in lines if line.startswith("hps_vlm_endpoint_up{"))
    assert up.endswith(" 1") and 'model="' in up
    assert any(line.startswith("hps_vlm_endpoint_in_flight{") for line in lines)
    assert any(line.startswith("hps_vlm_endpoint_failures_total{") for line in lines)
