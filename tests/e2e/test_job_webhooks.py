"""Job callbacks end to end: real gunicorn workers, tritonserver and the VLM stand-in post
a finished job's JobInfo to a real HTTP receiver on 127.0.0.1, signed, retried with
backoff while it fails, given up after HPS_WEBHOOK_ATTEMPTS. (A private callbackUrl
refused at submit by a default gateway: tests/e2e/test_jobs.py.)"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from contextlib import contextmanager
from typing import Any, Coroutine, Iterator

import httpx
import pytest

from docparse.jobs.webhook_signature import verify_signature
from scripts.gateway_local import GatewayServer
from scripts.triton_local import TritonServer
from tests.e2e.conftest import gateway_env
from tests.support.processes import wait_for
from tests.support.scripted_http import Outcome, Received, Reply, ScriptedServer
from testkit.documents import sample_pdf
from vlmsim import SimulatorProcess

pytestmark = pytest.mark.usefixtures("vlm")
SECRET = "s3cret"


@contextmanager
def receiver(*outcomes: Outcome) -> Iterator[ScriptedServer]:
    """A ScriptedServer (answers ``outcomes`` in turn, the last repeating; keeps every
    request) on an event loop of its own thread, so that blocking tests can use it."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="webhook-receiver", daemon=True)
    thread.start()

    def call(coroutine: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(10)

    async def stop(server: ScriptedServer) -> None:
        await server.__aexit__()
        handlers = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in handlers:  # kept-alive connections' handlers
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)

    server = ScriptedServer(*outcomes)
    try:
        call(server.__aenter__())
        try:
            yield server
        finally:
            call(stop(server))
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def submit_with_callback(client: httpx.Client, url: str) -> str:
    document = base64.b64encode(sample_pdf(1)).decode()
    answer = client.post("/jobs", json={"file": document, "callbackUrl": url})
    assert answer.status_code == 202, answer.text
    assert answer.json()["callback"] == {"url": url, "state": "waiting", "attempts": 0, "error": None}
    return answer.json()["jobId"]


def wait_for_callback(client: httpx.Client, job_id: str, timeout: float = 60) -> dict:
    """The job's JobInfo once its callback was delivered or given up."""
    infos: list[dict] = []

    def settled() -> bool:
        infos.append(client.get(f"/jobs/{job_id}").json())
        return infos[-1]["callback"]["state"] in ("delivered", "failed")

    wait_for(settled, timeout, f"job {job_id}'s callback to be delivered or given up")
    return infos[-1]


def signed_by(received: Received, secret: str) -> bool:
    headers = received.headers
    return verify_signature(secret, headers.get("x-docparse-timestamp"), received.body,
                            headers.get("x-docparse-signature"))


@pytest.fixture(scope="module")
def client(triton: TritonServer, vlm_server: SimulatorProcess, tmp_path_factory) -> Iterator[httpx.Client]:
    """A client of a gateway that may call back to 127.0.0.1 and signs, shared by the
    tests that need no other settings (a gateway takes seconds to start)."""
    env = gateway_env(triton, vlm_server, url_allow_private=True, webhook_secret=SECRET)
    with GatewayServer(env=env, workers=2, log_path=tmp_path_factory.mktemp("webhooks") / "gateway.log") as server:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            yield client


def test_a_finished_job_is_posted_once_as_its_signed_job_info(client: httpx.Client) -> None:
    with receiver(Reply(204)) as hook:
        url = f"http://127.0.0.1:{hook.port}/hooks/docparse"
        job_id = submit_with_callback(client, url)
        info = wait_for_callback(client, job_id)

    assert info["callback"] == {"url": url, "state": "delivered", "attempts": 1, "error": None}
    [delivery] = hook.requests
    assert delivery.method == "POST" and delivery.path == "/hooks/docparse"
    assert delivery.headers["content-type"] == "application/json"
    assert delivery.headers["x-docparse-event"] == "job.finished"
    body = json.loads(delivery.body)
    assert body["jobId"] == job_id and body["status"] == "succeeded" and body["pagesDone"] == 1
    # the JobInfo as GET /jobs/{id} answers it; only its callback's delivery has gone on since
    assert {k: v for k, v in body.items() if k != "callback"} == {k: v for k, v in info.items() if k != "callback"}
    assert body["callback"]["url"] == url
    assert signed_by(delivery, SECRET)
    assert not signed_by(delivery, "wrong secret")


def test_a_failing_receiver_gets_it_on_a_later_try_after_backoff(client: httpx.Client) -> None:
    failing = Reply(500, text="not now")
    with receiver(failing, failing, Reply(200)) as hook:
        job_id = submit_with_callback(client, f"http://127.0.0.1:{hook.port}/hook")
        info = wait_for_callback(client, job_id)

    assert info["callback"]["state"] == "delivered" and info["callback"]["attempts"] == 3
    assert info["callback"]["error"] is None
    assert len(hook.requests) == 3
    assert all(signed_by(delivery, SECRET) for delivery in hook.requests)
    assert all(json.loads(delivery.body)["jobId"] == job_id for delivery in hook.requests)
    first, second, third = (delivery.at for delivery in hook.requests)
    assert second - first >= 0.9 and third - second >= 1.9  # backoff 1 s, then 2 s


def test_a_receiver_that_always_fails_is_given_up_after_the_attempts(start_gateway) -> None:
    server = start_gateway(url_allow_private=True, webhook_secret=SECRET, webhook_attempts=2)
    with httpx.Client(base_url=server.url, timeout=60) as client, receiver(Reply(500, text="broken")) as hook:
        job_id = submit_with_callback(client, f"http://127.0.0.1:{hook.port}/hook")
        info = wait_for_callback(client, job_id)

    callback = info["callback"]
    assert info["status"] == "succeeded"  # the job itself is fine
    assert callback["state"] == "failed" and callback["attempts"] == 2
    assert callback["error"] == "the callbackUrl answered HTTP 500: broken"
    assert len(hook.requests) == 2
