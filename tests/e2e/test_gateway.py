"""The REST gateway end to end: gunicorn (2 uvicorn workers) → real tritonserver → VLM stand-in."""

from __future__ import annotations

import base64
import json
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from docparse.cli import sse_events
from scripts.triton_local import TritonServer
from testkit.documents import corrupt_pdf, pageless_pdf, sample_image, sample_pdf
from tests.conftest import triton_env
from tests.support.tcp_relay import TcpRelay
from vlmsim import SimulatorProcess

pytestmark = pytest.mark.triton


def body_for(data: bytes, **options) -> dict:
    return {"file": base64.b64encode(data).decode("ascii"), **options}


def peak_documents(calls: list[dict], prefix: str) -> int:
    """Most documents (request ids starting with ``prefix``) with VLM calls at one time."""
    calls = [c for c in calls if c["request_id"].startswith(prefix) and c["started"]]
    return max(
        len({c["request_id"] for c in calls if c["started"] <= t < c["finished"]})
        for t in (c["started"] for c in calls)
    )


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(0.05)


# --- the parsing routes -----------------------------------------------------------------


def test_pdf_as_json_gives_the_paddlex_envelope(http, vlm):
    response = http.post("/layout-parsing", json=body_for(sample_pdf(pages=2), logId="json-pdf"))

    assert response.status_code == 200
    envelope = response.json()
    assert envelope["logId"] == "json-pdf"
    assert (envelope["errorCode"], envelope["errorMsg"]) == (0, "Success")
    pages = envelope["result"]["layoutParsingResults"]
    assert len(pages) == 2 and envelope["result"]["dataInfo"]["numPages"] == 2
    assert pages[0]["markdown"]["text"].startswith("# text ")
    assert pages[0]["prunedResult"]["parsing_res_list"]


def test_a_log_id_is_made_when_none_is_given(http, vlm):
    envelope = http.post("/layout-parsing", json=body_for(sample_image("JPEG"))).json()
    assert envelope["errorCode"] == 0 and len(envelope["logId"]) >= 16


def test_multipart_upload_with_options(http, vlm):
    response = http.post(
        "/layout-parsing",
        files={"file": ("doc.pdf", sample_pdf(pages=3), "application/pdf")},
        data={"pages": "2-3", "useLayoutDetection": "true", "logId": "upload"},
    )
    assert response.status_code == 200, response.text
    envelope = response.json()
    assert envelope["logId"] == "upload"
    assert [p["prunedResult"]["page_index"] for p in envelope["result"]["layoutParsingResults"]] == [1, 2]


def test_image_upload_through_the_stream(http, vlm):
    with http.stream("POST", "/layout-parsing/stream", files={"file": ("page.png", sample_image("PNG"))}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = list(sse_events(response))
    assert [name for name, _ in events] == ["page", "final"]
    assert events[-1][1]["dataInfo"]["type"] == "image"


def test_stream_sends_each_page_before_the_document_is_done(http, vlm):
    vlm.configure(latency=0.3)
    arrivals = []
    with http.stream("POST", "/layout-parsing/stream", json=body_for(sample_pdf(pages=4), logId="sse")) as response:
        for name, data in sse_events(response):
            arrivals.append((name, data, time.time()))
    assert [name for name, _, _ in arrivals] == ["page"] * 4 + ["final"]
    assert [data["pageIndex"] for name, data, _ in arrivals[:4]] == [0, 1, 2, 3]
    last_call = max(c["finished"] for c in vlm.calls() if c["request_id"] == "sse")
    assert arrivals[0][2] < last_call, "the first page came only after all the work"


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "status", "message"),
    [
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, "not valid JSON"),
        ({"json": {"fiel": "abc"}}, 422, "fiel"),
        ({"json": {"file": "abc", "dpi": "high"}}, 422, "dpi"),
        ({"json": body_for(corrupt_pdf())}, 422, "PDF"),
        ({"json": body_for(b"hello world")}, 422, "not a PDF or a supported image"),
        ({"json": body_for(pageless_pdf())}, 422, "the PDF has no pages"),
        ({"json": body_for(sample_pdf(pages=3), pages="7")}, 422, "3 pages"),
        ({"json": {"file": "http://example.com/a.pdf"}}, 422, "HPS_ALLOW_URL_INPUT"),
    ],
)
def test_bad_input_gets_its_status_and_reason(http, kwargs, status, message):
    for route in ("/layout-parsing", "/layout-parsing/stream"):
        response = http.post(route, **kwargs)
        assert response.status_code == status, response.text
        envelope = response.json()
        assert envelope["errorCode"] == status
        assert message in envelope["errorMsg"]
        assert "Traceback" not in envelope["errorMsg"]


DEEP = b"[" * 100_000 + b"]" * 100_000
DEEP_LABELS = b'{"file": "aGk=", "markdownIgnoreLabels": ' + b"[" * 5000 + b"]" * 5000 + b"}"
MANY_KEYS = b"{" + b",".join(b'"k%d": 1' % i for i in range(1_000_000)) + b"}"
UNKNOWN_KEYS = b'{"file": "aGk=", ' + b",".join(b'"k%d": 1' % i for i in range(9_000)) + b"}"


@pytest.mark.parametrize(
    ("kwargs", "status", "message"),
    [
        ({"content": DEEP}, 400, "nested deeper than 64 levels"),
        ({"content": DEEP_LABELS}, 400, "nested deeper than 64 levels"),
        ({"content": MANY_KEYS}, 400, "more than 10000 entries"),
        ({"content": UNKNOWN_KEYS}, 422, "and 8995 more problems"),
        ({"files": {"file": ("a.pdf", b"%PDF-")}, "data": {"layoutThreshold": "[" * 5000 + "]" * 5000}},
         400, "form field 'layoutThreshold' is nested deeper than 64 levels"),
    ],
)
def test_hostile_json_is_refused_quickly_in_few_words(http, gateway, kwargs, status, message):
    """Limits before parsing: a 400 or 422 naming the limit in a short answer, within a
    second, and one access-log line without a traceback (a 500 with two tracebacks, and
    a 32 MB answer after 8 s of CPU for the million keys, before)."""
    headers = {} if "files" in kwargs else {"content-type": "application/json"}
    lines_before = len(gateway.log_path.read_text(errors="replace").splitlines())
    started = time.monotonic()
    response = http.post("/layout-parsing", headers=headers, **kwargs)
    assert time.monotonic() - started < 2
    assert response.status_code == status, response.text[:300]
    envelope = response.json()
    assert message in envelope["errorMsg"] and len(response.content) < 1000
    wait_for(lambda: f'"logId": "{envelope["logId"]}"' in gateway.log_path.read_text(errors="replace"),
             10, "the access-log line")
    new_lines = gateway.log_path.read_text(errors="replace").splitlines()[lines_before:]
    mine = [line for line in new_lines if envelope["logId"] in line]
    assert len(mine) == 1 and "docparse.gateway.access" in mine[0], mine
    assert not [line for line in new_lines if "Traceback" in line or " ERROR " in line], new_lines


def test_body_over_the_limit_is_refused_with_413(start_gateway):
    server = start_gateway(max_body_bytes=4096)
    response = httpx.post(f"{server.url}/layout-parsing", json=body_for(sample_pdf(pages=1)), timeout=30)
    assert response.status_code == 413
    assert "HPS_MAX_BODY_BYTES" in response.json()["errorMsg"]


class _FileServer:
    """A local HTTP server serving one PDF at /doc.pdf (for URL inputs)."""

    def __init__(self, data: bytes) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server API
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/doc.pdf"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_url_inputs_refuse_private_addresses_unless_allowed(start_gateway, vlm):
    files = _FileServer(sample_pdf(pages=1))
    try:
        guarded = start_gateway(allow_url_input=True)
        refused = httpx.post(f"{guarded.url}/layout-parsing", json={"file": files.url}, timeout=60)
        assert refused.status_code == 422
        assert "non-public address (127.0.0.1)" in refused.json()["errorMsg"]
        scheme = httpx.post(f"{guarded.url}/layout-parsing", json={"file": "http:///nohost"}, timeout=60)
        assert scheme.status_code == 422

        trusting = start_gateway(allow_url_input=True, url_allow_private=True)
        fetched = httpx.post(f"{trusting.url}/layout-parsing", json={"file": files.url}, timeout=60)
        assert fetched.status_code == 200, fetched.text
        assert fetched.json()["result"]["dataInfo"]["numPages"] == 1
    finally:
        files.close()


# --- concurrency and time -------------------------------------------------------------------


def test_concurrency_is_held_to_the_limit_and_overflow_gets_503(start_gateway, vlm):
    vlm.configure(latency=0.6)
    server = start_gateway(workers=2, max_concurrent_requests=1, queue_timeout=0.5)
    pdf = sample_pdf(pages=1)

    def post(i: int) -> httpx.Response:
        return httpx.post(f"{server.url}/layout-parsing", json=body_for(pdf, logId=f"limit-{i}"), timeout=120)

    with ThreadPoolExecutor(10) as pool:
        responses = list(pool.map(post, range(10)))

    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) <= {200, 503} and 200 in statuses and 503 in statuses, statuses
    busy = next(r for r in responses if r.status_code == 503)
    assert int(busy.headers["Retry-After"]) >= 1
    assert "busy" in busy.json()["errorMsg"]
    # 2 workers x 1 slot: never more than 2 documents at the VLM at once.
    assert peak_documents(vlm.calls(), "limit-") <= 2


def test_deadline_gives_504_and_cancels_the_work(start_gateway, vlm, triton):
    # Like vLLM at its --max-num-seqs: 4 calls at a time, the rest wait. The document's
    # 60 calls (12 pages x 5 regions) would keep the VLM busy for 15 s.
    vlm.configure(latency=1.0, max_concurrency=4)
    server = start_gateway(inference_timeout=2)
    response = httpx.post(
        f"{server.url}/layout-parsing", json=body_for(sample_pdf(pages=12), logId="too-slow"), timeout=60
    )
    answered_at = time.time()
    assert response.status_code == 504
    assert response.json()["errorCode"] == 504 and "HPS_INFERENCE_TIMEOUT" in response.json()["errorMsg"]
    assert_work_stopped("too-slow", vlm, triton, left_at=answered_at, calls_in_document=60)


def orchestrator_gave_up(triton: TritonServer, request_id: str) -> bool:
    """The orchestrator logged that it gave the document up (cancelled, or failed)."""
    line = f"WARNING docparse.orchestrator: logId={request_id} failed"
    return line in triton.log_path.read_text(errors="replace")


def assert_work_stopped(request_id: str, vlm, triton: TritonServer, left_at: float, calls_in_document: int) -> None:
    """The work of a document whose client left (or whose deadline passed) at ``left_at``
    stopped: the orchestrator gave it up (its log says so), every VLM call of it ended, and
    no call that started after ``left_at`` was served. Such a call is aborted when the
    orchestrator cancels it: notice takes its 0.2 s poll, a call here takes 1 s."""
    wait_for(lambda: orchestrator_gave_up(triton, request_id), 30, f"the orchestrator giving up {request_id!r}")

    def its_calls() -> list[dict]:
        return [c for c in vlm.calls() if c["request_id"] == request_id]

    wait_for(lambda: its_calls() and all(c["finished"] is not None for c in its_calls()), 30,
             f"every VLM call of {request_id!r} ending")
    calls = its_calls()
    served = [c for c in calls if c["status"] == 200]
    served_after = [c for c in served if c["started"] > left_at]
    assert len(served) < calls_in_document and not served_after, (len(served), served_after[:3])


def test_a_client_that_leaves_a_stream_cancels_the_work(http, vlm, triton):
    vlm.configure(latency=1.0, max_concurrency=4)
    with http.stream("POST", "/layout-parsing/stream", json=body_for(sample_pdf(pages=12), logId="gone")) as response:
        first = next(sse_events(response))
        assert first[0] == "page"
    assert_work_stopped("gone", vlm, triton, left_at=time.time(), calls_in_document=60)


def test_a_client_that_leaves_before_the_first_page_is_cancelled_cleanly(start_gateway, vlm, triton):
    vlm.configure(latency=1.0, max_concurrency=4)
    server = start_gateway(workers=1)
    with pytest.raises(httpx.ReadTimeout):  # the client gives up before any event came
        httpx.post(
            f"{server.url}/layout-parsing/stream", json=body_for(sample_pdf(pages=6), logId="early"),
            timeout=httpx.Timeout(30, read=0.5),
        )
    assert_work_stopped("early", vlm, triton, left_at=time.time(), calls_in_document=30)
    log = server.log_tail(200)
    assert "already running" not in log and "Traceback" not in log, log


def test_sigterm_lets_requests_in_flight_finish(start_gateway, vlm):
    vlm.configure(latency=1.0)
    server = start_gateway(workers=1)
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(
            httpx.post, f"{server.url}/layout-parsing", json=body_for(sample_pdf(pages=1), logId="draining"), timeout=60
        )
        wait_for(lambda: any(c["request_id"] == "draining" for c in vlm.calls()), 30, "the request reaching the VLM")
        os.killpg(server.process.pid, signal.SIGTERM)
        response = pending.result()
    assert response.status_code == 200 and response.json()["errorCode"] == 0
    server.process.wait(timeout=30)
    assert server.process.returncode == 0


def test_triton_unloads_cleanly_after_concurrent_streams(start_gateway, tiny_layout_dir, vlm_server, tmp_path):
    """A finished stream is read to its end, not cancelled: cancelling streams the server
    was closing left tritonserver holding requests, and its stop then waited the whole
    exit timeout with layout-parsing-stream never unloaded. Unloading logs no errors
    (the VLM client's pooled connections were once reported as unclosed)."""
    triton = TritonServer(env=triton_env(tiny_layout_dir, vlm_server), log_path=tmp_path / "tritonserver.log",
                          ready_timeout=180).start()
    try:
        server = start_gateway(triton_url=triton.grpc_url)
        body = lambda i: body_for(sample_pdf(pages=2), logId=f"together-{i}")  # noqa: E731
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(
                lambda i: httpx.post(f"{server.url}/layout-parsing/stream", json=body(i), timeout=120), range(8)
            ))
        assert all(a.status_code == 200 and "event: final" in a.text for a in answers)
    finally:
        triton.stop(timeout=60)
    log = triton.log_tail(200)
    assert "successfully unloaded 'layout-parsing-stream'" in log, log
    assert triton.process.returncode == 0, log
    assert " ERROR " not in log[log.index("Signal (15) received"):], log


# --- health, readiness, metrics, logs, docs ---------------------------------------------------


def test_liveness_and_readiness(http):
    # The GLM-OCR server's clients read vllm and layout_model beside our status.
    assert http.get("/health").json() == {"status": "ok", "vllm": True, "layout_model": True, "model": "glm-ocr"}
    ready = http.get("/health/ready")
    assert ready.status_code == 200 and ready.json()["checks"] == {"triton": "ok", "vlm": "ok"}


def test_readiness_follows_the_vlm_down_and_back(start_gateway):
    with SimulatorProcess() as own_vlm:
        port = own_vlm.port
        server = start_gateway(vlm=own_vlm)
        assert httpx.get(f"{server.url}/health/ready", timeout=10).status_code == 200
        own_vlm.stop()
        down = httpx.get(f"{server.url}/health/ready", timeout=10)
        assert down.status_code == 503 and "vlm" in down.json()["failing"]
        with SimulatorProcess(port=port):
            wait_for(lambda: httpx.get(f"{server.url}/health/ready", timeout=10).status_code == 200, 20, "ready again")


def test_readiness_follows_triton_down_and_back(start_gateway, triton):
    host, port = triton.grpc_url.split(":")
    relay = TcpRelay(host, int(port)).open()
    try:
        server = start_gateway(triton_url=relay.address)
        ready = f"{server.url}/health/ready"
        assert httpx.get(ready, timeout=10).status_code == 200
        relay.cut()
        wait_for(lambda: httpx.get(ready, timeout=10).status_code == 503, 20, "not ready")
        assert httpx.get(ready, timeout=10).json()["failing"].startswith("triton: ")
        relay.open()
        wait_for(lambda: httpx.get(ready, timeout=10).status_code == 200, 30, "ready again")
    finally:
        relay.cut()


def test_readiness_names_triton_when_it_is_unreachable(start_gateway, vlm):
    from scripts.processes import free_port

    server = start_gateway(triton_url=f"127.0.0.1:{free_port()}")
    down = httpx.get(f"{server.url}/health/ready", timeout=10)
    assert down.status_code == 503
    assert down.json()["failing"].startswith("triton: ")
    parse = httpx.post(f"{server.url}/layout-parsing", json=body_for(sample_image("PNG")), timeout=30)
    assert parse.status_code == 503 and "Triton" in parse.json()["errorMsg"]


def test_metrics_add_up_over_all_workers(http, vlm):
    before = requests_counted(http.get("/metrics").text)
    for i in range(4):
        assert http.post("/layout-parsing", json=body_for(sample_image("PNG"), logId=f"m{i}")).status_code == 200
    for _ in range(4):  # whichever worker answers the scrape sees every worker's requests
        text = http.get("/metrics").text
        assert requests_counted(text) - before == 4
    assert "hps_request_duration_seconds_bucket" in text and "hps_slot_wait_seconds" in text


def requests_counted(text: str) -> float:
    prefix = 'hps_requests_total{route="/layout-parsing",status="200"}'
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix))


def test_one_structured_log_line_per_request(http, gateway, vlm):
    http.post("/layout-parsing", json=body_for(sample_pdf(pages=2), logId="logged"))
    http.get("/health")
    lines = [json.loads(line.split("docparse.gateway.access: ", 1)[1])
             for line in gateway.log_tail(400).splitlines() if "docparse.gateway.access: " in line]
    mine = [line for line in lines if line["logId"] == "logged"]
    assert mine and mine[0]["status"] == 200 and mine[0]["pages"] == 2 and mine[0]["route"] == "/layout-parsing"
    assert not [line for line in lines if line["route"] == "/health"]  # filtered by default


def test_openapi_describes_every_request_field(http):
    schema = http.get("/openapi.json").json()
    request = schema["components"]["schemas"]["LayoutParsingRequest"]
    assert {"file", "fileType", "pages", "dpi", "layoutThreshold", "logId"} <= set(request["properties"])
    assert all(field.get("description") for field in request["properties"].values())
    assert http.get("/docs").status_code == 200 and http.get("/redoc").status_code == 200
