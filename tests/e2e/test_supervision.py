"""tritonserver SIGKILLed under load: every request in flight ends at once with a clear
503 (a streamed one with its `error` event), /health/ready says Triton is down, and
nothing of the killed server is left: its Python stubs are killed by their watchdogs
and their shared memory removed, with no help from the launcher. The server here is
this test's own, so the session's shared one lives on; restarting and the gateway
recovering are in tests/e2e/test_run_local.py and tests/integration/test_supervisor.py."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from docparse.cli import sse_events
from docparse.client import MODELS, request_for
from scripts.gateway_local import GatewayServer
from scripts.triton_local import TritonServer
from tests.conftest import triton_env
from tests.e2e.conftest import gateway_env
from tests.support.processes import leftovers, stubs_of, wait_for, watchdogs_of
from testkit.documents import sample_pdf
from vlmsim import SimulatorProcess

pytestmark = pytest.mark.triton

STREAMS, UNARY = 3, 2
ANSWER_BOUND = 10.0  # seconds from the kill to the last in-flight answer (seen: well under 1)
CLEANUP_BOUND = 10.0  # seconds from the kill until no stub, watchdog or region is left (seen: 1)


class InFlight:
    """Parsing requests sent from threads: streams (each says when its first page came)
    and whole-document requests; what each got in the end."""

    def __init__(self, url: str, body: dict) -> None:
        self.url, self.body = url, body
        self.first_pages = threading.Semaphore(0)
        self.answers: dict[str, object] = {}
        self.finished: dict[str, float] = {}
        self.threads = [threading.Thread(target=self.stream, args=(f"stream-{i}",)) for i in range(STREAMS)]
        self.threads += [threading.Thread(target=self.unary, args=(f"unary-{i}",)) for i in range(UNARY)]
        for thread in self.threads:
            thread.start()

    def stream(self, name: str) -> None:
        with httpx.Client(base_url=self.url, timeout=60) as client:
            with client.stream("POST", "/layout-parsing/stream", json={**self.body, "logId": name}) as response:
                events = []
                for event in sse_events(response):
                    events.append(event)
                    if len(events) == 1:
                        self.first_pages.release()
        self.answers[name], self.finished[name] = (response.status_code, events), time.monotonic()

    def unary(self, name: str) -> None:
        with httpx.Client(base_url=self.url, timeout=60) as client:
            response = client.post("/layout-parsing", json={**self.body, "logId": name})
        self.answers[name], self.finished[name] = (response.status_code, response.json()), time.monotonic()

    def wait_for_first_pages(self, timeout: float) -> None:
        for _ in range(STREAMS):
            assert self.first_pages.acquire(timeout=timeout), "a stream got no first page"

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        assert not any(thread.is_alive() for thread in self.threads), f"requests still running {timeout} s after the kill"


def test_a_killed_tritonserver_fails_requests_in_flight_with_503_and_leaves_nothing(
    tiny_layout_dir: Path, vlm: SimulatorProcess, tmp_path: Path
):
    vlm.configure(latency=0.5)  # long enough documents that the kill lands in the middle
    triton = TritonServer(env=triton_env(tiny_layout_dir, vlm), log_path=tmp_path / "tritonserver.log")
    with triton, GatewayServer(env=gateway_env(triton, vlm), workers=1, log_path=tmp_path / "gateway.log") as gateway:
        server = triton.process.pid
        stubs = stubs_of(server)
        assert len(stubs) == len(MODELS), stubs  # one per model
        watchdogs = wait_for(lambda: len(watchdogs_of(stubs)) == len(MODELS) and watchdogs_of(stubs), 10, "the watchdogs")
        assert triton.shm_regions()

        requests = InFlight(gateway.url, request_for(sample_pdf(pages=6)))
        requests.wait_for_first_pages(timeout=60)
        killed = time.monotonic()
        os.kill(server, signal.SIGKILL)
        requests.join(timeout=ANSWER_BOUND)
        assert triton.process.wait(timeout=5) == -signal.SIGKILL

        unavailable = f"the inference server (Triton at {triton.grpc_url}) is unavailable"
        for name, (status, answer) in requests.answers.items():
            if name.startswith("stream"):  # 200 was sent with the first page: the error ends the stream
                assert status == 200 and answer[0][0] == "page", (name, answer)
                (last, error) = answer[-1]
                assert last == "error" and error["errorCode"] == 503 and unavailable in error["errorMsg"], (name, answer)
            else:
                assert status == 503 and unavailable in answer["errorMsg"], (name, answer)
            assert requests.finished[name] - killed < ANSWER_BOUND

        ready = httpx.get(f"{gateway.url}/health/ready", timeout=10)
        assert ready.status_code == 503 and ready.json()["failing"].startswith("triton: "), ready.text
        refused = httpx.post(f"{gateway.url}/layout-parsing", json=request_for(sample_pdf(pages=1)), timeout=10)
        assert refused.status_code == 503 and unavailable in refused.json()["errorMsg"]

        # Before the launcher's stop(), which would clean up itself: the watchdogs alone.
        wait_for(lambda: not leftovers(stubs, watchdogs), CLEANUP_BOUND, "no stub, watchdog or region left")
        assert not triton.shm_regions(), triton.shm_regions()
