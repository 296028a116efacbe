"""Jobs survive what kills synchronous requests: a gateway worker SIGKILLed, the whole
stack stopped and started, tritonserver killed and restarted (or gone for good), the VLM
unreachable for a while, a store that cannot be written. Each through real processes.

"Never computed twice": every run of a job has its own logId (the job's, then
"-run2"…), which the VLM stand-in records with each call. A page has as many VLM calls
as regions it recognised, so a later run that asked only for the pages not stored yet
made exactly that many calls for those pages."""

from __future__ import annotations

import base64
import os
import signal
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from docparse.jobs.store import JobStore
from scripts.gateway_local import GatewayServer
from scripts.triton_local import TritonServer
from tests.conftest import triton_env
from tests.e2e.conftest import GatewayFactory, gateway_env
from tests.support.processes import wait_for
from tests.support.tcp_relay import TcpRelay
from testkit.documents import sample_pdf
from vlmsim import SimulatorProcess

pytestmark = pytest.mark.triton
PAGES = 8
FAST_TAKEOVER = {"job_lease": 2, "job_retry_delay": 0.5, "job_poll_interval": 0.2}


def submit(url: str, document: bytes, **fields: object) -> dict:
    answer = httpx.post(f"{url}/jobs", json={"file": base64.b64encode(document).decode(), **fields}, timeout=30)
    assert answer.status_code == 202, answer.text
    return answer.json()


def info(url: str, job_id: str) -> dict:
    return httpx.get(f"{url}/jobs/{job_id}", timeout=30).json()


def finished(url: str, job_id: str, timeout: float) -> dict:
    return wait_for(lambda: (i := info(url, job_id))["status"] not in ("queued", "running") and i, timeout,
                    f"job {job_id} to finish")


def store_of(gateway: GatewayServer) -> JobStore:
    assert gateway.log_path is not None
    return JobStore.open(f"sqlite:///{gateway.log_path.parent / 'data' / 'jobs.sqlite3'}")


def calls_of(vlm: SimulatorProcess, log_id: str) -> list[dict]:
    return [c for c in vlm.calls() if c["request_id"] == log_id]


def assert_each_page_stored_once(store: JobStore, job_id: str) -> None:
    """Every page stored, none stored twice (a page stored again gets a later seq)."""
    pages = store.pages(job_id)
    assert sorted(p.page_index for p in pages) == list(range(PAGES))
    assert sorted(p.seq for p in pages) == list(range(1, PAGES + 1))


def later_runs_made_only_the_missing_pages(url: str, vlm: SimulatorProcess, job: dict, stored_before: set[int]) -> None:
    """The calls of every run after the first match the regions of the pages that were
    not stored when the first stopped: nothing stored was recognised again."""
    pages = httpx.get(f"{url}/jobs/{job['jobId']}/result", timeout=30).json()["result"]["layoutParsingResults"]
    missing = [p for p in pages if p["prunedResult"]["page_index"] not in stored_before]
    later = [c for c in vlm.calls() if c["request_id"].startswith(f"{job['logId']}-run")]
    assert len(later) == sum(p["regions"]["recognized"] for p in missing)
    assert stored_before, "the stop came before any page was stored: nothing was proved"


def test_a_sigkilled_worker_s_job_is_taken_over_from_its_first_unfinished_page(
    start_gateway: GatewayFactory, vlm: SimulatorProcess
) -> None:
    vlm.configure(latency=0.3)
    gateway = start_gateway(workers=2, job_concurrency=1, **FAST_TAKEOVER)
    store = store_of(gateway)
    job = submit(gateway.url, sample_pdf(PAGES))
    wait_for(lambda: info(gateway.url, job["jobId"])["pagesDone"] >= 2, 60, "two pages stored")
    owner = store.record(job["jobId"])["lease_owner"]
    os.kill(int(owner.split(":")[1]), signal.SIGKILL)
    stored_before = set(store.page_states(job["jobId"]))  # the killed worker writes no more

    done = finished(gateway.url, job["jobId"], 90)
    assert done["status"] == "succeeded" and done["pagesDone"] == PAGES and done["attempts"] == 2
    assert store.record(job["jobId"])["lease_owner"] is None
    assert_each_page_stored_once(store, job["jobId"])
    later_runs_made_only_the_missing_pages(gateway.url, vlm, job, stored_before)
    store.close()


# --- a stack of this module's own: tritonserver behind nothing, the VLM behind a relay ---


@pytest.fixture(scope="module")
def vlm_relay(vlm_server: SimulatorProcess) -> Iterator[TcpRelay]:
    port = int(vlm_server.root.rsplit(":", 1)[1])
    relay = TcpRelay("127.0.0.1", port).open()
    yield relay
    relay.cut()


@pytest.fixture(scope="module")
def own_triton(tiny_layout_dir: Path, vlm_server: SimulatorProcess, vlm_relay: TcpRelay, tmp_path_factory) -> Iterator[TritonServer]:
    env = {**triton_env(tiny_layout_dir, vlm_server), "HPS_VLM_URL": f"http://{vlm_relay.address}/v1"}
    server = TritonServer(env=env, log_path=tmp_path_factory.mktemp("own-triton") / "tritonserver.log", ready_timeout=180)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def own_gateway(triton: TritonServer, vlm: SimulatorProcess, folder: Path, **settings: object) -> GatewayServer:
    folder.mkdir(parents=True, exist_ok=True)
    return GatewayServer(env=gateway_env(triton, vlm, **settings), workers=1, log_path=folder / "gateway.log")


def running_triton(triton: TritonServer) -> TritonServer:
    """The module's server, started again if an earlier test left it dead."""
    if triton.process is None or triton.process.poll() is not None:
        triton.start()
    return triton


def test_a_job_resumes_after_the_whole_stack_stopped_and_started(
    own_triton: TritonServer, vlm: SimulatorProcess, tmp_path: Path
) -> None:
    vlm.configure(latency=0.3)
    triton = running_triton(own_triton)
    gateway = own_gateway(triton, vlm, tmp_path, **FAST_TAKEOVER).start()
    job = submit(gateway.url, sample_pdf(PAGES))
    wait_for(lambda: info(gateway.url, job["jobId"])["pagesDone"] >= 2, 60, "two pages stored")
    gateway.stop()
    triton.stop()
    store = store_of(gateway)
    assert store.record(job["jobId"])["status"] == "queued"  # given back on the clean stop
    stored_before = set(store.page_states(job["jobId"]))

    triton.start()
    with own_gateway(triton, vlm, tmp_path, **FAST_TAKEOVER) as again:
        done = finished(again.url, job["jobId"], 90)
        assert done["status"] == "succeeded" and done["pagesDone"] == PAGES
        assert_each_page_stored_once(store, job["jobId"])
        later_runs_made_only_the_missing_pages(again.url, vlm, job, stored_before)
    store.close()


def test_a_job_outlives_a_killed_tritonserver_or_fails_clearly(
    own_triton: TritonServer, vlm: SimulatorProcess, tmp_path: Path
) -> None:
    vlm.configure(latency=0.3)
    triton = running_triton(own_triton)
    patient = {**FAST_TAKEOVER, "job_max_attempts": 10, "job_retry_delay": 1}
    with own_gateway(triton, vlm, tmp_path / "patient", **patient) as gateway:
        job = submit(gateway.url, sample_pdf(PAGES))
        wait_for(lambda: info(gateway.url, job["jobId"])["pagesDone"] >= 2, 60, "two pages stored")
        os.kill(triton.process.pid, signal.SIGKILL)
        wait_for(lambda: info(gateway.url, job["jobId"])["attempts"] >= 2, 30, "a retry after the kill")
        triton.stop()  # the dead server's leftovers
        triton.start()
        done = finished(gateway.url, job["jobId"], 120)
        assert done["status"] == "succeeded" and done["pagesDone"] == PAGES, done

    # Gone for good: the job ends failed, naming Triton, after its bounded retries.
    os.kill(triton.process.pid, signal.SIGKILL)
    hopeless = {**FAST_TAKEOVER, "job_max_attempts": 2, "job_retry_delay": 0.2}
    with own_gateway(triton, vlm, tmp_path / "hopeless", **hopeless) as gateway:
        job = submit(gateway.url, sample_pdf(2))
        done = finished(gateway.url, job["jobId"], 30)
        assert done["status"] == "failed" and done["error"]["code"] == 503, done
        assert "gave up after 2 runs" in done["error"]["message"]
        assert f"Triton at {triton.grpc_url}) is unavailable" in done["error"]["message"]
    triton.stop()


def test_pages_that_failed_while_the_vlm_was_unreachable_are_retried(
    own_triton: TritonServer, vlm: SimulatorProcess, vlm_relay: TcpRelay, tmp_path: Path
) -> None:
    vlm.configure(latency=0.3)
    triton = running_triton(own_triton)
    with own_gateway(triton, vlm, tmp_path, **{**FAST_TAKEOVER, "job_retry_delay": 1}) as gateway:
        job = submit(gateway.url, sample_pdf(PAGES))
        wait_for(lambda: info(gateway.url, job["jobId"])["pagesDone"] >= 1, 60, "a page stored")
        vlm_relay.cut()
        try:
            wait_for(lambda: info(gateway.url, job["jobId"])["pagesFailed"] >= 1, 30, "a page failing")
        finally:
            vlm_relay.open()
        done = finished(gateway.url, job["jobId"], 120)
        assert done["status"] == "succeeded" and done["pagesFailed"] == 0 and done["attempts"] >= 2, done
        result = httpx.get(f"{gateway.url}/jobs/{job['jobId']}/result", timeout=30).json()["result"]
        assert result["summary"]["failedRegions"] == 0 and result["summary"]["pages"] == PAGES


def test_a_store_that_cannot_be_written_fails_the_job_clearly(start_gateway: GatewayFactory) -> None:
    gateway = start_gateway(workers=1, job_store_max_mb=1)
    job = submit(gateway.url, sample_pdf(PAGES), visualize=True)  # pages with images: > 1 MB
    done = finished(gateway.url, job["jobId"], 60)
    assert done["status"] == "failed" and done["error"]["code"] == 500, done
    assert "database or disk is full" in done["error"]["message"]
    listed = httpx.get(f"{gateway.url}/jobs", timeout=30)
    assert listed.status_code == 200 and job["jobId"] in [j["jobId"] for j in listed.json()["jobs"]]
    small = submit(gateway.url, sample_pdf(1))  # what was freed (the document) takes a small job
    assert finished(gateway.url, small["jobId"], 60)["status"] == "succeeded"
