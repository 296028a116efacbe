"""The VLM HTTP client against a scripted HTTP server: request shape, retries, limits, errors."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from docparse.errors import RecognitionError
from docparse.recognition.vlm import VlmClient
from docparse.scheduling import Priority, Ticket, ticket_task
from docparse.settings import VlmSettings
from scripts.processes import free_port
from tests.support.scripted_http import Disconnect, Received, Reply, ScriptedServer

IMAGE = "data:image/jpeg;base64,/9j/AAAA"


def answer(content: str = "hello") -> Reply:
    return Reply(200, json={"choices": [{"message": {"role": "assistant", "content": content}}]})


def error(status: int, message: str = "boom", **headers: str) -> Reply:
    return Reply(status, json={"error": {"message": message, "type": "X", "code": status}}, headers=headers)


def make_client(url: str, **options) -> VlmClient:
    settings = dict(max_concurrency=8, max_retries=2, retry_backoff=0.001, retry_backoff_max=0.01)
    settings.update(options)
    return VlmClient(VlmSettings(url=url, **settings))


async def complete(client: VlmClient, **options) -> str:
    try:
        return await client.complete(IMAGE, "Text Recognition:", max_tokens=100, temperature=0.0, **options)
    finally:
        await client.aclose()


async def run(*outcomes, client_options: dict | None = None, **options) -> tuple[str, list[Received]]:
    """One call against a server playing ``outcomes``: the answer and what the server received."""
    async with ScriptedServer(*outcomes) as server:
        result = await complete(make_client(server.url, **(client_options or {})), **options)
        return result, server.requests


async def failure(*outcomes, client_options: dict | None = None) -> tuple[RecognitionError, list[Received]]:
    async with ScriptedServer(*outcomes) as server:
        with pytest.raises(RecognitionError) as caught:
            await complete(make_client(server.url, **(client_options or {})))
        return caught.value, server.requests


async def test_request_is_an_openai_chat_completion_with_the_image_then_the_prompt():
    result, requests = await run(
        answer("text 28x28"), client_options={"api_key": "secret"},
        top_p=0.9, repetition_penalty=1.05, request_id="log-1",
    )
    assert result == "text 28x28"
    request = requests[0]
    assert request.method == "POST" and request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer secret"
    assert request.headers["x-request-id"] == "log-1"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.body) == {
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
    _, requests = await run(answer())
    request = requests[0]
    assert "authorization" not in request.headers
    assert request.headers["x-request-id"] == ""
    body = json.loads(request.body)
    assert "top_p" not in body and "repetition_penalty" not in body


async def test_429_waits_for_retry_after_then_succeeds():
    result, requests = await run(
        error(429, "busy", **{"Retry-After": "0.2"}), answer("ok"), client_options={"retry_backoff_max": 5.0}
    )
    assert result == "ok"
    assert len(requests) == 2
    assert requests[1].at - requests[0].at >= 0.19


async def test_retry_after_is_capped_by_the_longest_backoff(monkeypatch):
    waits = []
    real_sleep = asyncio.sleep

    async def recorded_sleep(seconds):
        waits.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr("docparse.recognition.vlm.asyncio.sleep", recorded_sleep)
    result, _ = await run(error(429, **{"Retry-After": "600"}), answer("ok"), client_options={"retry_backoff_max": 0.05})
    assert result == "ok"
    assert waits == [0.05]  # not the 600 s the server asked for


@pytest.mark.parametrize(
    "failing",
    [error(503, "loading"), error(500), Disconnect(), Reply(200, json={}, delay=1.0)],
    ids=["503", "500", "connection closed without an answer", "timeout"],
)
async def test_transient_failures_are_retried_until_success(failing):
    result, requests = await run(failing, failing, answer("ok"), client_options={"max_retries": 2, "timeout": 0.3})
    assert result == "ok"
    assert len(requests) == 3


@pytest.mark.parametrize("status", [400, 401, 404, 422])
async def test_other_4xx_are_not_retried(status):
    caught, requests = await failure(error(status, "The model `x` does not exist."), answer())
    assert caught.message == f"VLM answered {status} after 1 attempt: The model `x` does not exist."
    assert len(requests) == 1


async def test_the_error_after_the_last_attempt_names_the_status_and_the_server_message():
    caught, requests = await failure(error(500, "CUDA out of memory " + "x" * 1000), client_options={"max_retries": 2})
    assert len(requests) == 3
    assert caught.message.startswith("VLM answered 500 after 3 attempts: CUDA out of memory")
    assert len(caught.message) < 300
    assert caught.status == 502


async def test_a_non_json_error_body_is_quoted():
    caught, _ = await failure(Reply(502, text="<html>Bad Gateway</html>"), client_options={"max_retries": 0})
    assert caught.message.startswith("VLM answered 502 after 1 attempt: <html>Bad Gateway")


async def test_timeouts_become_a_recognition_error_that_says_so():
    caught, requests = await failure(Reply(200, json={}, delay=2.0), client_options={"timeout": 0.3, "max_retries": 1})
    assert caught.message == "VLM timed out after 0.3 s (2 attempts)"
    assert len(requests) == 2


async def test_connect_failures_name_the_server():
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    with pytest.raises(RecognitionError, match=rf"{url}/chat/completions could not be reached after 2 attempts"):
        await complete(make_client(url, max_retries=1))


@pytest.mark.parametrize(
    "reply",
    [Reply(200, json={"choices": []}), Reply(200, json={"choices": [{"message": {"content": None}}]}),
     Reply(200, text="not json")],
    ids=["no choices", "null content", "not json"],
)
async def test_an_answer_without_content_is_an_error(reply):
    caught, _ = await failure(reply)
    assert caught.message.startswith("VLM answer has no choices[0].message.content")


async def test_calls_in_flight_never_exceed_the_limit():
    in_flight = peak = 0

    async def counted(request: Received) -> Reply:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return answer("ok")

    async with ScriptedServer(counted) as server:
        client = make_client(server.url, max_concurrency=4)
        try:
            results = await asyncio.gather(*(
                client.complete(IMAGE, "Text Recognition:", max_tokens=10, temperature=0.0) for _ in range(40)
            ))
        finally:
            await client.aclose()
    assert results == ["ok"] * 40
    assert peak == 4


async def test_vllms_priority_is_sent_only_when_it_schedules_by_priority():
    """A job's calls carry priority 1, a synchronous request's 0; with fcfs none (vLLM
    refuses a priority it was not started for)."""

    async def body_sent(policy: str, priority: Priority) -> dict:
        async with ScriptedServer(answer()) as server:
            client = make_client(server.url, scheduling_policy=policy)
            await ticket_task(Ticket("doc", priority), complete(client))
            return json.loads(server.requests[0].body)

    assert (await body_sent("priority", Priority.BATCH))["priority"] == 1
    assert (await body_sent("priority", Priority.INTERACTIVE))["priority"] == 0
    assert "priority" not in await body_sent("fcfs", Priority.BATCH)


async def test_each_failure_is_logged_with_the_request_id(caplog):
    with caplog.at_level(logging.WARNING, logger="docparse.vlm"):
        await run(error(503), error(503), answer(), request_id="doc-42")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert all("logId=doc-42" in line and "503" in line for line in lines)
