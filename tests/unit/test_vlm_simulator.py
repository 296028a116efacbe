"""The VLM stand-in behaves like vLLM where our tests and benchmarks rely on it."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import time

import httpx
import pytest
from PIL import Image

from bench.vlm_simulator import SimulatorProcess


def jpeg(width: int = 56, height: int = 28) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 10, 10)).save(buffer, format="JPEG")
    return buffer.getvalue()


def chat(prompt: str = "Text Recognition:", image: bytes | None = None, model: str = "glm-ocr", **extra) -> dict:
    image = jpeg() if image is None else image
    return {
        "model": model,
        "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64," + base64.b64encode(image).decode()}},
            {"type": "text", "text": prompt},
        ]}],
        **extra,
    }


def post(sim: SimulatorProcess, body: object, request_id: str = "", **kwargs) -> httpx.Response:
    return httpx.post(f"{sim.url}/chat/completions", json=body, headers={"X-Request-Id": request_id}, **kwargs)


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("Text Recognition:", "text 56x28 #{h}"),
        ("Table Recognition:", "<table><tr><td>cell 56x28</td></tr></table>"),
        ("Formula Recognition:", "\\frac{{a}}{{b}} #{h}"),
        ("What is this?", "echo: What is this? 56x28"),
    ],
)
def test_answers_follow_from_the_prompt_and_the_image(sim, prompt, expected):
    image = jpeg()
    response = post(sim, chat(prompt, image))
    assert response.status_code == 200
    body = response.json()
    digest = hashlib.sha256(image).hexdigest()[:8]
    assert body["choices"][0]["message"]["content"] == expected.format(h=digest)
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["object"] == "chat.completion" and body["model"] == "glm-ocr" and body["id"]
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0


def test_every_call_is_recorded(sim):
    post(sim, chat(image=jpeg(84, 56), max_tokens=99, temperature=0.5), request_id="doc-1")
    [call] = sim.calls()
    assert {k: call[k] for k in ("request_id", "prompt", "width", "height", "model", "max_tokens", "temperature", "status")} == {
        "request_id": "doc-1", "prompt": "Text Recognition:", "width": 84, "height": 56,
        "model": "glm-ocr", "max_tokens": 99, "temperature": 0.5, "status": 200,
    }
    assert abs(call["started"] - time.time()) < 60 and call["started"] <= call["finished"]


async def test_calls_above_max_concurrency_wait_in_a_queue(sim):
    sim.configure(max_concurrency=2, latency=0.2)
    async with httpx.AsyncClient(timeout=10) as client:
        responses = await asyncio.gather(*(
            client.post(f"{sim.url}/chat/completions", json=chat(), headers={"X-Request-Id": f"q{i}"})
            for i in range(6)
        ))
    assert [r.status_code for r in responses] == [200] * 6
    stats = sim.stats()
    assert stats["peak_in_flight"] == 2 and stats["total_calls"] == 6
    assert stats["running"] == 0 and stats["queued"] == 0
    starts = sorted(c["started"] for c in sim.calls())
    assert starts[-1] - starts[0] >= 0.35  # three waves of two


def test_unknown_model_is_404_in_openai_format(sim):
    response = post(sim, chat(model="gpt-4"))
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["message"] == "The model `gpt-4` does not exist."
    assert error["type"] == "NotFoundError" and error["code"] == 404


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"model": "glm-ocr", "messages": [{"role": "user", "content": "Text Recognition:"}]}, "image_url"),
        (chat(image=b"not a jpeg"), "could not be decoded"),
        ({"model": "glm-ocr", "messages": []}, "messages"),
        (chat(max_tokens=0), "max_tokens"),
        ([1, 2], "JSON object"),
    ],
    ids=["missing image", "bad image", "no messages", "bad max_tokens", "not an object"],
)
def test_malformed_requests_are_400(sim, body, message):
    response = post(sim, body)
    assert response.status_code == 400
    assert message in response.json()["error"]["message"]
    assert sim.calls()[-1]["status"] == 400


def test_a_body_that_is_not_json_is_400(sim):
    response = httpx.post(f"{sim.url}/chat/completions", content=b"{oops")
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]["message"]


def test_failure_rules_match_prompt_and_request_id_and_stop_after_times(sim):
    sim.configure(failures=[
        {"prompt": "Formula Recognition:", "status": 503, "times": 1, "message": "warming up"},
        {"request_id": "doomed", "status": 500},
    ])
    first = post(sim, chat("Formula Recognition:"))
    assert first.status_code == 503 and first.json()["error"]["message"] == "warming up"
    assert post(sim, chat("Formula Recognition:")).status_code == 200
    assert post(sim, chat(), request_id="doomed").status_code == 500
    assert post(sim, chat(), request_id="fine").status_code == 200
    assert [c["status"] for c in sim.calls()] == [503, 200, 500, 200]


def test_a_stall_rule_delays_then_answers(sim):
    sim.configure(failures=[{"prompt": "Table Recognition:", "stall": 0.3}])
    started = time.monotonic()
    assert post(sim, chat("Table Recognition:")).status_code == 200
    assert time.monotonic() - started >= 0.3
    with pytest.raises(httpx.ReadTimeout):
        post(sim, chat("Table Recognition:"), timeout=0.1)
    wait_until(lambda: sim.stats()["running"] == 0)
    # The abandoned call is aborted, as vLLM aborts a request whose client went away.
    assert [c["status"] for c in sim.calls()] == [200, 499]


def wait_until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_bad_configuration_is_refused_and_changes_nothing(sim):
    with pytest.raises(RuntimeError, match="max_concurrency"):
        sim.configure(latency=1.0, max_concurrency=0)
    with pytest.raises(RuntimeError, match="unknown configuration"):
        sim.configure(latencyy=1.0)
    assert sim.stats()["max_concurrency"] == 64
    started = time.monotonic()
    post(sim, chat())
    assert time.monotonic() - started < 0.5


def test_reset_clears_calls_and_stats(sim):
    post(sim, chat())
    sim.reset()
    assert sim.calls() == []
    assert sim.stats()["total_calls"] == 0 and sim.stats()["peak_in_flight"] == 0


def test_vllm_operational_endpoints(sim):
    post(sim, chat())
    assert httpx.get(f"{sim.root}/health").status_code == 200
    models = httpx.get(f"{sim.url}/models").json()
    assert models["object"] == "list" and [m["id"] for m in models["data"]] == ["glm-ocr"]
    metrics = httpx.get(f"{sim.root}/metrics").text
    assert 'vllm:num_requests_running{model_name="glm-ocr"} 0' in metrics
    assert 'vllm:num_requests_waiting{model_name="glm-ocr"} 0' in metrics
    assert 'vllm:request_success_total{finished_reason="stop",model_name="glm-ocr"} 1' in metrics

