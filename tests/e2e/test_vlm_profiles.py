"""Named VLM profiles (HPS_VLM_PROFILES, issue #18) end to end: one tritonserver and one
gateway with two profiles, each on its own VLM stand-in that differs in speed, mode and
answer: ``fast`` reads regions with GLM-OCR's prompts, ``page`` reads whole pages as
Markdown. A request picks one with ``model``; each keeps its own bound on calls."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

import httpx
import pytest

from scripts.gateway_local import GatewayServer
from scripts.triton_local import TritonServer
from testkit.documents import sample_image
from tests.conftest import gateway_env, triton_env
from tests.e2e.test_gateway import body_for
from vlmsim import SimulatorProcess
from vlmsim.chat import PAGE_PROMPT

pytestmark = pytest.mark.triton

FAST_BOUND, PAGE_BOUND = 3, 2


@pytest.fixture(scope="module")
def stand_ins() -> Iterator[dict[str, SimulatorProcess]]:
    with SimulatorProcess(latency=0.05, max_concurrency=64) as fast, \
            SimulatorProcess(latency=0.3, max_concurrency=64, model="pagey") as page:
        yield {"fast": fast, "page": page}


def profiles_for(stand_ins: dict[str, SimulatorProcess]) -> str:
    return json.dumps([
        {"name": "fast", "preset": "glm-ocr", "url": stand_ins["fast"].url, "max_concurrency": FAST_BOUND},
        {"name": "page", "url": stand_ins["page"].url, "model": "pagey", "mode": "page",
         "prompts": {"page": PAGE_PROMPT}, "max_concurrency": PAGE_BOUND},
    ])


@pytest.fixture(scope="module")
def profiled(tiny_layout_dir, stand_ins, tmp_path_factory) -> Iterator[GatewayServer]:
    """One tritonserver and one gateway with both profiles."""
    logs = tmp_path_factory.mktemp("profiles")
    profiles = profiles_for(stand_ins)
    env = {**triton_env(tiny_layout_dir, stand_ins["fast"]), "HPS_VLM_PROFILES": profiles}
    triton = TritonServer(env=env, log_path=logs / "tritonserver.log", ready_timeout=180)
    triton.start()
    try:
        gateway = GatewayServer(env=gateway_env(triton, stand_ins["fast"], HPS_VLM_PROFILES=profiles),
                                workers=2, log_path=logs / "gateway.log")
        with gateway:
            yield gateway
    finally:
        triton.stop()
        print(f"\n--- tritonserver log tail ---\n{triton.log_tail(40)}")


@pytest.fixture()
def client(profiled: GatewayServer, stand_ins) -> Iterator[httpx.Client]:
    for sim in stand_ins.values():
        sim.reset()
    with httpx.Client(base_url=profiled.url, timeout=120) as http:
        yield http


def parse(http: httpx.Client, model: str | None, log_id: str = "") -> httpx.Response:
    body = body_for(sample_image(), **({"model": model} if model else {}), **({"logId": log_id} if log_id else {}))
    return http.post("/layout-parsing", json=body)


def blocks(answer: httpx.Response) -> list[dict]:
    return answer.json()["result"]["layoutParsingResults"][0]["prunedResult"]["parsing_res_list"]


def test_each_request_lands_on_its_profile_with_its_prompts(client, stand_ins):
    default, page = parse(client, None), parse(client, "page")
    assert default.status_code == 200 and page.status_code == 200, (default.text, page.text)
    fast_prompts = {call["prompt"] for call in stand_ins["fast"].calls()}
    assert fast_prompts and fast_prompts <= {"Text Recognition:", "Table Recognition:", "Formula Recognition:"}
    page_calls = stand_ins["page"].calls()
    assert [(c["prompt"], c["model"]) for c in page_calls] == [(PAGE_PROMPT, "pagey")]
    labels = [block["block_label"] for block in blocks(page)]
    assert labels == ["doc_title", "text", "table", "display_formula"]
    width, height = page_calls[0]["width"], page_calls[0]["height"]
    assert f"page {width}x{height}" in blocks(page)[1]["block_content"]


def test_both_bounds_hold_under_load_on_both(client, stand_ins):
    models = ["fast", "page"] * 6
    with ThreadPoolExecutor(len(models)) as pool:
        answers = list(pool.map(lambda m: parse(client, m), models))
    assert all(answer.status_code == 200 for answer in answers), [a.text for a in answers if a.status_code != 200]
    assert stand_ins["fast"].stats()["peak_in_flight"] == FAST_BOUND
    assert stand_ins["page"].stats()["peak_in_flight"] == PAGE_BOUND


def test_unknown_model_is_refused_listing_the_names(client, stand_ins):
    answer = parse(client, "nope")
    assert answer.status_code == 422, answer.text
    assert "nope" in answer.text and "fast, page" in answer.text
    form = client.post("/api/ocr/recognize", files={"image": ("p.png", sample_image(), "image/png")}, data={"model": "nope"})
    assert form.status_code == 422 and "fast, page" in form.text, form.text
    assert not stand_ins["fast"].calls() and not stand_ins["page"].calls()


def test_info_lists_the_profiles_and_metrics_name_them(client):
    assert client.get("/api/info").json()["models"] == ["fast", "page"]
    metrics = client.get("/metrics").text
    assert 'hps_vlm_profile_info{' in metrics and 'name="page"' in metrics and 'mode="page"' in metrics


def test_one_server_down_fails_only_its_requests(client, stand_ins):
    """Last in the module: the page stand-in stays stopped."""
    ready = client.get("/health/ready").json()
    assert ready["checks"]["vlm:fast"] == "ok" and ready["checks"]["vlm:page"] == "ok"
    stand_ins["page"].stop()
    down = parse(client, "page")
    assert down.status_code == 503, down.text
    assert str(stand_ins["page"].port) in down.text
    assert parse(client, "fast").status_code == 200
    ready = client.get("/health/ready")
    assert ready.status_code == 503
    assert "vlm:page" in ready.json()["failing"] and ready.json()["checks"]["vlm:fast"] == "ok"
