"""Failures told truthfully, end to end (gateway → tritonserver → a VLM stand-in of this
module's own, so that it can go down): partial failures are a 200 with their counts; a
document nothing of which could be read because the VLM is gone is a 503 with
Retry-After; while it is known to be down, requests fail at once; once it is back,
requests succeed again without anyone restarting anything."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from scripts.gateway_local import GatewayServer
from scripts.triton_local import TritonServer
from testkit.documents import sample_pdf
from tests.conftest import triton_env
from tests.e2e.conftest import gateway_env
from vlmsim import SimulatorProcess

pytestmark = pytest.mark.triton

OPEN_SECONDS = 1.0


@pytest.fixture(scope="module")
def own_vlm() -> Iterator[SimulatorProcess]:
    with SimulatorProcess(latency=0.02, max_concurrency=64) as sim:
        yield sim


@pytest.fixture(scope="module")
def stack(tiny_layout_dir: Path, own_vlm: SimulatorProcess, tmp_path_factory) -> Iterator[GatewayServer]:
    """tritonserver and a gateway whose VLM is ``own_vlm``, with a short-lived circuit."""
    logs = tmp_path_factory.mktemp("truthful")
    env = {
        **triton_env(tiny_layout_dir, own_vlm),
        "HPS_VLM_MAX_RETRIES": "1",
        "HPS_VLM_CONNECT_TIMEOUT": "1",
        "HPS_VLM_CIRCUIT_FAILURES": "3",
        "HPS_VLM_CIRCUIT_OPEN_SECONDS": str(OPEN_SECONDS),
    }
    triton = TritonServer(env=env, log_path=logs / "tritonserver.log", ready_timeout=180)
    triton.start()
    try:
        with GatewayServer(env=gateway_env(triton, own_vlm), workers=1, log_path=logs / "gateway.log") as gateway:
            yield gateway
    finally:
        triton.stop()


def parse(stack: GatewayServer, pages: int = 1) -> httpx.Response:
    body = {"file": base64.b64encode(sample_pdf(pages=pages)).decode("ascii")}
    return httpx.post(f"{stack.url}/layout-parsing", json=body, timeout=60)


def test_partial_failures_are_a_success_with_their_counts(stack, own_vlm):
    own_vlm.configure(failures=[{"prompt": "Formula Recognition:", "status": 500}])
    try:
        response = parse(stack, pages=2)
    finally:
        own_vlm.configure(failures=[])
    assert response.status_code == 200
    answer = response.json()
    assert answer["errorCode"] == 0
    assert [page["regions"] for page in answer["result"]["layoutParsingResults"]] == [
        {"recognized": 4, "failed": 1}, {"recognized": 4, "failed": 1},
    ]
    assert answer["result"]["summary"] == {"pages": 2, "failedPages": 0, "recognizedRegions": 8, "failedRegions": 2}


def test_a_vlm_that_is_gone_is_a_503_then_fails_fast_then_recovers_by_itself(stack, own_vlm):
    port = own_vlm.port
    own_vlm.stop()
    try:
        response = parse(stack)
        assert response.status_code == 503, response.text
        assert int(response.headers["Retry-After"]) >= 1
        assert response.json()["errorCode"] == 503 and "VLM" in response.json()["errorMsg"]

        started = time.monotonic()
        again = httpx.post(f"{stack.url}/layout-parsing/stream", json=parse_body(), timeout=60)
        assert again.status_code == 503  # before any page: the stream never started
        assert "is down" in again.json()["errorMsg"] and "Retry-After" in again.headers
        assert time.monotonic() - started < 2, "a VLM known to be down must fail the request at once"
    finally:
        own_vlm.port = port
        own_vlm.start()
    deadline = time.monotonic() + 20
    while (response := parse(stack)).status_code != 200:
        assert time.monotonic() < deadline, f"not back within 20 s: {response.text}"
        time.sleep(OPEN_SECONDS / 4)
    assert response.json()["result"]["summary"]["failedRegions"] == 0


def parse_body() -> dict:
    return {"file": base64.b64encode(sample_pdf(pages=1)).decode("ascii")}
