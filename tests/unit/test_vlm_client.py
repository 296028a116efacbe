"""The VLM HTTP client against httpx.MockTransport: request shape, retries, limits, errors."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Callable

import httpx
import pytest

from docparse.errors import RecognitionError
from docparse.recognition.vlm import VlmClient
from docparse.settings import Settings

IMAGE = "data:image/jpeg;base64,/9j/AAAA"


def answer(content: str = "hello") -> httpx.Response:
    return httpx.Response(200, json={"choices": [{"message": {"role": "assistant", "content": content}}]})


def error(status: int, message: str = "boom", **headers: str) -> httpx.Response:
    return httpx.Response(status, json={"error": {"message": message, "type": "X", "code": status}}, headers=headers)


class Script:
    """A MockTransport handler that plays the given outcomes in turn (the last repeats)
    and keeps every request."""

    def __init__(self, *outcomes: httpx.Response | Callable[[httpx.Request], Exception]) -> None:
        self.outcomes = list(outcomes)
        self.requests: list[httpx.Request] = []
        self.times: list[float] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.times.append(time.monotonic())
        outcome = self.outcomes[min(len(self.requests), len(self.outcomes)) - 1]
        if isinstance(outcome, httpx.Response):
            return outcome
        raise outcome(request)


def make_client(handler, **options) -> VlmClient:
    settings = dict(
        api_key=None, max_concurrency=8, timeout=120.0, connect_timeout=5.0,
        max_retries=2, backoff=0.001, backoff_max=0.01,
    )
    settings.update(options)
    return VlmClient("http://vlm.test/v1/", "glm-ocr", transport=httpx.MockTransport(handler), **settings)


async def complete(client: VlmClient, **options) -> str:
    try:
        return await client.complete(IMAGE, "Text Recognition:", max_tokens=100, temperature=0.0, **options)
    finally:
        await client.aclose()


async def test_request_is_an_openai_chat_completion_with_the_image_then_the_prompt():
    script = Script(answer("text 28x28"))
    client = make_client(script, api_key="secret")

    assert await complete(client, top_p=0.9, repetition_penalty=1.05, request_id="log-1") == "text 28x28"

    request = script.requests[0]
    assert request.method == "POST" and str(request.url) == "http://vlm.test/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer secret"
    assert request.headers["x-request-id"] == "log-1"
    assert json.loads(request.content) == {
        "model": "glm-ocr",
        "messages": [{
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": IMAGE}},
                {"type": "text", "text": "Text Recognition:"},
            ],
        }],
        "max_tokens": 100,
        "temperature": 0.0,
        "top_p": 0.9,
        "repetition_penalty": 1.05,
    }


async def test_unset_options_and_key_are_not_sent():
    script = Script(answer())
    await complete(make_client(script))
    request = script.requests[0]
    assert "authorization" not in request.headers
    assert request.headers["x-request-id"] == ""
    body = json.loads(request.content)
    assert "top_p" not in body and "repetition_penalty" not in body


async def test_429_waits_for_retry_after_then_succeeds():
    script = Script(error(429, "busy", **{"Retry-After": "0.2"}), answer("ok"))
    assert await complete(make_client(script, backoff_max=5.0)) == "ok"
    assert len(script.requests) == 2
    assert script.times[1] - script.times[0] >= 0.19


async def test_retry_after_is_capped_by_the_longest_backoff(monkeypatch):
    waits = []
    real_sleep = asyncio.sleep

    async def recorded_sleep(seconds):
        waits.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr("docparse.recognition.vlm.asyncio.sleep", recorded_sleep)
    script = Script(error(429, **{"Retry-After": "600"}), answer("ok"))
    assert await complete(make_client(script, backoff_max=0.05)) == "ok"
    assert waits == [0.05]  # not the 600 s the server asked for


@pytest.mark.parametrize(
    "failure",
    [
        error(503, "loading"),
        error(500),
        lambda request: httpx.ConnectError("connection refused", request=request),
        lambda request: httpx.RemoteProtocolError("server disconnected", request=request),
        lambda request: httpx.ReadTimeout("timed out", request=request),
    ],
    ids=["503", "500", "connect error", "protocol error", "read timeout"],
)
async def test_transient_failures_are_retried_until_success(failure):
    script = Script(failure, failure, answer("ok"))
    assert await complete(make_client(script, max_retries=2)) == "ok"
    assert len(script.requests) == 3


@pytest.mark.parametrize("status", [400, 401, 404, 422])
async def test_other_4xx_are_not_retried(status):
    script = Script(error(status, "The model `x` does not exist."), answer())
    with pytest.raises(RecognitionError, match=rf"VLM answered {status} after 1 attempt: The model `x` does not exist\."):
        await complete(make_client(script))
    assert len(script.requests) == 1


async def test_the_error_after_the_last_attempt_names_the_status_and_the_server_message():
    script = Script(error(500, "CUDA out of memory " + "x" * 1000))
    with pytest.raises(RecognitionError) as caught:
        await complete(make_client(script, max_retries=2))
    assert len(script.requests) == 3
    message = caught.value.message
    assert message.startswith("VLM answered 500 after 3 attempts: CUDA out of memory")
    assert len(message) < 300
    assert caught.value.status == 502


async def test_a_non_json_error_body_is_quoted():
    script = Script(httpx.Response(502, text="<html>Bad Gateway</html>"))
    with pytest.raises(RecognitionError, match="502 after 1 attempt: <html>Bad Gateway"):
        await complete(make_client(script, max_retries=0))


async def test_timeouts_become_a_recognition_error_that_says_so():
    script = Script(lambda request: httpx.ReadTimeout("timed out", request=request))
    with pytest.raises(RecognitionError, match=r"VLM timed out after 7 s \(2 attempts\)"):
        await complete(make_client(script, timeout=7.0, max_retries=1))


async def test_connect_failures_name_the_server():
    script = Script(lambda request: httpx.ConnectError("connection refused", request=request))
    with pytest.raises(RecognitionError, match="http://vlm.test/v1/chat/completions could not be reached"):
        await complete(make_client(script, max_retries=1))


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, json={"choices": []}),
        httpx.Response(200, json={"choices": [{"message": {"content": None}}]}),
        httpx.Response(200, text="not json"),
    ],
    ids=["no choices", "null content", "not json"],
)
async def test_an_answer_without_content_is_an_error(response):
    with pytest.raises(RecognitionError, match=r"no choices\[0\]\.message\.content"):
        await complete(make_client(Script(response)))


async def test_calls_in_flight_never_exceed_the_limit():
    in_flight = peak = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return answer("ok")

    client = make_client(handler, max_concurrency=4)
    try:
        results = await asyncio.gather(*(
            client.complete(IMAGE, "Text Recognition:", max_tokens=10, temperature=0.0) for _ in range(40)
        ))
    finally:
        await client.aclose()
    assert results == ["ok"] * 40
    assert peak == 4


async def test_each_failure_is_logged_with_the_request_id(caplog):
    script = Script(error(503), error(503), answer())
    with caplog.at_level(logging.WARNING, logger="docparse.vlm"):
        await complete(make_client(script), request_id="doc-42")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert all("logId=doc-42" in line and "503" in line for line in lines)


async def test_from_settings_uses_every_vlm_setting():
    settings = Settings(
        vlm_url="http://gpu-box:8000/v1", vlm_model="GLM", vlm_api_key="k", vlm_max_concurrency=3,
        vlm_timeout=9, vlm_connect_timeout=2, vlm_max_retries=5, vlm_retry_backoff=0.1,
        vlm_retry_backoff_max=1,
    )
    client = VlmClient.from_settings(settings)
    try:
        assert client.url == "http://gpu-box:8000/v1/chat/completions"
        assert (client.model, client.max_concurrency, client.max_retries) == ("GLM", 3, 5)
        assert (client.timeout, client.connect_timeout, client.backoff, client.backoff_max) == (9, 2, 0.1, 1)
    finally:
        await client.aclose()
