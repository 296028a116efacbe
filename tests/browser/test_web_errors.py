"""Errors as a person meets them on the page: a file that is not a PDF or an image, a bad
field, no network; and, on a strict gateway (API keys on, a small body limit, one slot
and no wait for it), the key asked for and kept, a file too large, a busy server."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Iterator

import httpx
import pytest

from gateway.keys import hash_key, new_key
from scripts.gateway_local import GatewayServer
from testkit.documents import sample_image, sample_pdf
from tests.browser.web_page import WebPage
from tests.browser.test_web_parse import write
from tests.conftest import gateway_env

pytestmark = pytest.mark.triton

KEY = new_key()
MAX_BODY_BYTES = 64 * 1024  # a 1-page PDF (about 27 KiB) fits, the sample PNG (120 KiB) does not


def api_error(url: str, name: str, data: bytes, **fields: str) -> str:
    """The errorMsg the API gives for the same upload."""
    response = httpx.post(f"{url}/layout-parsing/stream", files={"file": (name, data)}, data=fields, timeout=60)
    assert response.status_code == 422, response.text
    return response.json()["errorMsg"]


def test_a_file_that_is_not_a_pdf_or_an_image(web: WebPage, tmp_path: Path):
    data = b"Meeting notes: this is plain text, whatever its name says.\n"
    web.start_parse(write(tmp_path, "notes.pdf", data))

    error = web.wait_for_error()
    assert api_error(web.url, "notes.pdf", data) in error
    assert "not a PDF or a supported image" in error
    assert web.by_id("result").get_attribute("hidden") is not None
    assert web.by_id("parse-start").is_enabled()


def test_a_bad_page_range_says_what_is_wrong(web: WebPage, tmp_path: Path):
    data = sample_pdf(pages=2)
    web.start_parse(write(tmp_path, "report.pdf", data), pages="7-9")

    assert api_error(web.url, "report.pdf", data, pages="7-9") in web.wait_for_error()


def test_no_network(web: WebPage, tmp_path: Path):
    document = write(tmp_path, "report.pdf", sample_pdf(pages=1))
    web.driver.execute_cdp_cmd("Network.enable", {})
    web.driver.execute_cdp_cmd("Network.emulateNetworkConditions",
                               {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
    web.start_parse(document)

    assert web.wait_for_error().startswith("Could not reach the server.")
    assert web.by_id("parse-start").is_enabled()


@pytest.fixture(scope="module")
def strict(triton, vlm_server, tmp_path_factory) -> Iterator[GatewayServer]:
    folder = tmp_path_factory.mktemp("strict")
    env = gateway_env(triton, vlm_server, api_keys=f"web:{hash_key(KEY)}", max_body_bytes=MAX_BODY_BYTES,
                      max_concurrent_requests=1, queue_timeout=0)
    with GatewayServer(env=env, workers=1, log_path=folder / "gateway.log") as server:
        yield server


def test_a_key_is_asked_for_then_kept(open_page: Callable[[GatewayServer], WebPage], strict, tmp_path: Path):
    web = open_page(strict)
    document = write(tmp_path, "report.pdf", sample_pdf(pages=1))
    web.start_parse(document)

    assert web.wait_for_error().startswith("This server needs an API key.")
    assert web.by_id("key-box").get_attribute("open") is not None
    assert web.driver.switch_to.active_element == web.by_id("key-input")
    web.save_key(KEY)
    assert web.script("return localStorage.getItem('docparse.apiKey')") == KEY
    web.by_id("parse-start").click()
    assert web.wait_until_done() == "Done: 1 of 1 page."

    web.open()  # a new visit: the key is still there, and sent
    assert web.text("key-state") == "set"
    assert web.parse(document) == "Done: 1 of 1 page."


def test_a_wrong_key_is_refused(open_page: Callable[[GatewayServer], WebPage], strict, tmp_path: Path):
    web = open_page(strict)
    web.save_key("dp_not-a-key")
    web.start_parse(write(tmp_path, "report.pdf", sample_pdf(pages=1)))

    assert web.wait_for_error().startswith("The server did not accept this API key.")


def test_a_file_too_large(open_page: Callable[[GatewayServer], WebPage], strict, tmp_path: Path):
    web = open_page(strict)
    web.save_key(KEY)
    web.start_parse(write(tmp_path, "scan.png", sample_image("PNG")))

    assert web.wait_for_error().startswith("The file is too large for this server")


def test_a_busy_server_says_when_to_try_again(open_page: Callable[[GatewayServer], WebPage], strict, vlm, tmp_path: Path):
    web = open_page(strict)
    web.save_key(KEY)
    vlm.configure(latency=1.0, max_concurrency=4)
    # Another client holds the gateway's one slot for as long as its stream is open.
    with httpx.stream("POST", f"{strict.url}/layout-parsing/stream", headers={"X-API-Key": KEY},
                      files={"file": ("long.pdf", sample_pdf(pages=6))}, timeout=60) as other:
        assert other.status_code == 200
        web.start_parse(write(tmp_path, "report.pdf", sample_pdf(pages=1)))
        error = web.wait_for_error()
    assert re.match(r"The server is busy; try again in [1-9]\d* s\.", error), error
