"""``make run`` end to end: scripts.run_local starts the real tritonserver with the CPU
engines and the gateway; tritonserver SIGKILLed mid-document is restarted by itself (the
document in flight ends with a 503, nothing of the killed server is left, the gateway
recovers); the ``docparse`` CLI parses a PDF through it; Ctrl-C stops it all."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from docparse.cli import sse_events
from docparse.client import request_for
from scripts.processes import free_port, http_ok
from tests.e2e.test_gateway import _FileServer
from tests.support.browser import CHROMEDRIVER, CHROMIUM, running_chromium, save_screenshot
from tests.support.processes import children, leftovers, stubs_of, wait_for, watchdogs_of
from testkit.documents import ENGLISH_TEXT, sample_image, sample_pdf
from testkit.text_layers import text_layer_pdf

pytestmark = pytest.mark.triton

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 300
RECOVERY_BOUND = 90  # seconds from the kill until /health/ready again (backoff 1 s + the start)


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def output_of(_process: subprocess.Popen, log: Path) -> str:
    return log.read_text(errors="replace")[-6000:]


def kill_tritonserver_mid_document(url: str, launcher: int, log: Path) -> None:
    """SIGKILL the launcher's tritonserver once a streamed document has its first page:
    the stream ends with a 503 `error` event at once, /health/ready says Triton is
    down, the stubs and their shared memory go, and the launcher restarts it by itself."""
    (triton,) = [child for child in children(launcher) if Path(child.command[0]).name == "tritonserver"]
    stubs = stubs_of(triton.pid)
    watchdogs = wait_for(lambda: watchdogs_of(stubs), 10, "the stubs' watchdogs")
    with httpx.Client(base_url=url, timeout=120) as client:
        with client.stream("POST", "/layout-parsing/stream", json=request_for(sample_pdf(pages=4))) as response:
            events = sse_events(response)
            assert next(events)[0] == "page"
            os.kill(triton.pid, signal.SIGKILL)
            killed = time.monotonic()
            name, error = next(events)
        assert time.monotonic() - killed < 10
        assert name == "error" and error["errorCode"] == 503, error
        assert "the inference server (Triton at 127.0.0.1:" in error["errorMsg"]
        ready = client.get("/health/ready")
        assert ready.status_code == 503 and ready.json()["failing"].startswith("triton: "), ready.text
    wait_for(lambda: not leftovers(stubs, watchdogs), 10, "no stub, watchdog or region of the killed server left")
    wait_for(lambda: http_ok(f"{url}/health/ready", timeout=5), RECOVERY_BOUND, "ready again after the restart")
    print(f"tritonserver killed and back in {time.monotonic() - killed:.1f} s")
    output = log.read_text(errors="replace")
    assert "warning: tritonserver exited with signal SIGKILL" in output
    assert "tritonserver is back (restart 1)" in output


def glm_ocr_api_reads_with_the_cpu_engines(url: str) -> None:
    """The GLM-OCR server's routes on ``make run``: real text read by the CPU engines;
    extraction, which needs a VLM, says so."""
    words = {w.strip(",.:").lower() for w in ENGLISH_TEXT.split() if len(w.strip(",.:")) > 5}
    image = ("page.png", sample_image(), "image/png")
    with httpx.Client(base_url=url, timeout=300) as client:
        recognized = client.post("/api/ocr/recognize", files={"image": image}, data={"task": "text"})
        assert recognized.status_code == 200, recognized.text
        assert len(words & set(recognized.json()["text"].lower().replace(",", " ").split())) >= len(words) // 2
        document = client.post("/api/ocr/document", files={"file": ("doc.pdf", sample_pdf(pages=1), "application/pdf")})
        assert document.status_code == 200, document.text
        (page,) = document.json()["pages"]
        assert page["regions"] and len(words & set(page["text"].lower().replace(",", " ").split())) >= len(words) // 2
        batch = client.post("/api/ocr/batch", files=[("images", image), ("images", ("x.png", b"junk", "image/png"))])
        assert [("text" in r, r.get("errorCode")) for r in batch.json()["results"]] == [(True, None), (False, 422)]
        extracted = client.post("/api/ocr/extract", files={"image": image}, data={"schema": '{"title": ""}'})
        assert extracted.status_code == 501 and "needs a VLM" in extracted.json()["error"], extracted.text
        info = client.get("/api/info").json()
        assert info["recognizer"].startswith("cpu:") and not any("Extraction" in f for f in info["features"])


def ocrflux_api_converts_with_the_cpu_engines(url: str) -> None:
    """OCRFlux's routes on ``make run``: a file, and a URL (the test's own file server;
    make run is started with URL inputs on, private addresses allowed)."""
    words = {w.strip(",.:").lower() for w in ENGLISH_TEXT.split() if len(w.strip(",.:")) > 5}
    pdf = sample_pdf(pages=2)
    files = _FileServer(pdf)
    try:
        with httpx.Client(base_url=url, timeout=300) as client:
            converted = client.post("/convert/file", files={"file": ("doc.pdf", pdf, "application/pdf")},
                                    data={"output_format": "text"})
            assert converted.status_code == 200, converted.text
            text = converted.json()["content"].lower().replace(",", " ").split()
            assert len(words & set(text)) >= len(words) // 2, text
            fetched = client.post("/convert/url", json={"url": files.url, "max_page_retries": 0})
            assert fetched.status_code == 200, fetched.text
            assert fetched.json()["metadata"]["pages_processed"] == 2 and fetched.json()["failed_pages"] == []
    finally:
        files.close()


def born_digital_pages_come_from_their_text_layer(url: str) -> None:
    """With the CPU engines a PDF's reliable text regions are read from the PDF itself
    (exact, no OCR; textLayer's default here is auto); a scanned page and a paragraph in
    a font whose text is private-use code points are read by the OCR."""
    words = [w.strip(",.:").lower() for w in ENGLISH_TEXT.split()]
    with httpx.Client(base_url=url, timeout=300) as client:
        def parse(**fields: str) -> list[dict]:
            answer = client.post("/layout-parsing", json={**request_for(text_layer_pdf("good", "scanned", "private_use")),
                                                          **fields})
            assert answer.status_code == 200, answer.text
            return answer.json()["result"]["layoutParsingResults"]

        started = time.monotonic()
        good, scanned, private_use = parse()
        print(f"3 pages (born digital, scanned, private-use font) with the CPU engines: {time.monotonic() - started:.1f} s")
    sources = [{b["source"] for b in page["prunedResult"]["parsing_res_list"] if "source" in b}
               for page in (good, scanned, private_use)]
    assert sources[:2] == [{"text_layer"}, {"cpu:pp-ocrv6"}] and sources[2] == {"text_layer", "cpu:pp-ocrv6"}, sources
    assert " ".join(ENGLISH_TEXT.split()) in " ".join(good["markdown"]["text"].split())  # the PDF's own text, exact
    for page in (scanned, private_use):
        read = set(page["markdown"]["text"].lower().replace(",", " ").split())
        assert len(set(words) & read) >= len(set(words)) // 2, read
        assert not any(0xE000 <= ord(c) <= 0xF8FF for c in page["markdown"]["text"])
    with httpx.Client(base_url=url, timeout=300) as client:
        answer = client.post("/layout-parsing", json={**request_for(text_layer_pdf("good")), "textLayer": "off"})
    assert {b.get("source") for b in answer.json()["result"]["layoutParsingResults"][0]["prunedResult"]["parsing_res_list"]
            if b.get("source")} == {"cpu:pp-ocrv6"}


def web_page_shows_what_the_cpu_engines_read(url: str, document: Path, tmp_path: Path) -> None:
    """The web page on ``make run`` in a real browser: the PDF's real text, read by the CPU
    engines, shown on each page (and a screenshot of it, test-artifacts/screenshots/). Without
    the browser this part is left out here (tests/browser says how to install it)."""
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()) and not os.environ.get("CI"):
        return
    from tests.browser.web_page import WebPage

    words = {w.strip(",.:").lower() for w in ENGLISH_TEXT.split() if len(w.strip(",.:")) > 5}
    with running_chromium(tmp_path) as driver:
        page = WebPage(driver, url).open()
        assert page.parse(document, dpi="110").startswith("Done: 2 of 2")
        save_screenshot(driver, REPO_ROOT / "test-artifacts" / "screenshots" / "make_run_cpu_engines.png")
        for drawn in page.all(".page-markdown"):
            seen = " ".join(page.visible_text_lines(drawn)).lower().replace(",", " ").split()
            assert len(words & set(seen)) >= len(words) // 2, seen


def test_make_run_serves_the_cli_and_stops_on_ctrl_c(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "run_local.log"
    env = {k: v for k, v in os.environ.items() if k not in ("HPS_LAYOUT_BACKEND", "HPS_RECOGNIZER", "HPS_PORT")}
    env.update(HPS_ALLOW_URL_INPUT="true", HPS_URL_ALLOW_PRIVATE="true")  # /convert/url from this test's server
    with open(log, "wb") as out:
        process = subprocess.Popen(
            # One gateway worker: once /health/ready answers 200, the worker that will
            # take the parse has its gRPC channel back too (each worker reconnects on its
            # own, within its 3 s reconnect backoff).
            [sys.executable, "-m", "scripts.run_local", "--port", str(port), "--triton-grpc-port", "0", "--workers", "1"],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while not http_ok(f"{url}/health/ready"):
            if process.poll() is not None:
                pytest.fail(f"run_local exited with {process.returncode}:\n{output_of(process, log)}")
            if time.monotonic() > deadline:
                pytest.fail(f"not ready after {READY_TIMEOUT} s:\n{output_of(process, log)}")
            time.sleep(0.5)

        kill_tritonserver_mid_document(url, process.pid, log)
        document = tmp_path / "doc.pdf"
        document.write_bytes(sample_pdf(pages=2))
        started = time.monotonic()
        parsed = subprocess.run(
            [sys.executable, "-m", "docparse.cli", "parse", str(document), "--out", str(tmp_path / "out"), "--url", url],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
        seconds = time.monotonic() - started
        print(f"2-page parse with the CPU engines: {seconds:.1f} s")
        assert parsed.returncode == 0, parsed.stderr + output_of(process, log)
        assert "page 2/2 done" in parsed.stderr

        markdown = (tmp_path / "out" / "doc.md").read_text(encoding="utf-8")
        assert any(line.startswith(("# ", "## ")) for line in markdown.splitlines()), markdown
        words = [w.strip(",.:").lower() for w in ENGLISH_TEXT.split() if len(w.strip(",.:")) > 5]
        found = [w for w in words if w in markdown.lower()]
        assert len(found) >= len(words) // 2, (found, markdown)

        result = json.loads((tmp_path / "out" / "doc.json").read_text(encoding="utf-8"))
        assert len(result["layoutParsingResults"]) == 2
        assert result["dataInfo"]["numPages"] == 2
        for page in result["layoutParsingResults"]:
            for name in page["markdown"].get("images") or {}:
                assert (tmp_path / "out" / name).is_file()

        health = subprocess.run(
            [sys.executable, "-m", "docparse.cli", "health", "--url", url],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert health.returncode == 0, health.stdout + health.stderr
        assert json.loads(health.stdout)["status"] == "ready"
        glm_ocr_api_reads_with_the_cpu_engines(url)
        ocrflux_api_converts_with_the_cpu_engines(url)
        born_digital_pages_come_from_their_text_layer(url)
        web_page_shows_what_the_cpu_engines_read(url, document, tmp_path)

        os.killpg(process.pid, signal.SIGINT)
        try:
            code = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"run_local did not stop within 60 s of SIGINT:\n{output_of(process, log)}")
        assert code == 0, output_of(process, log)
        assert "Traceback" not in log.read_text(errors="replace")
        deadline = time.monotonic() + 10
        while not port_is_free(port):
            assert time.monotonic() < deadline, f"port {port} still taken after the stop"
            time.sleep(0.2)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
