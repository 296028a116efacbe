"""The async jobs API through real gunicorn workers, tritonserver and the VLM stand-in:
submit, follow, read, cancel, list; what a user of /jobs sees."""

from __future__ import annotations

import base64
import time

import httpx
import pytest

from tests.support.processes import wait_for
from testkit.documents import corrupt_pdf, sample_pdf
from vlmsim import SimulatorProcess

pytestmark = pytest.mark.usefixtures("vlm")


def submit(http: httpx.Client, document: bytes, **fields: object) -> dict:
    answer = http.post("/jobs", json={"file": base64.b64encode(document).decode(), **fields})
    assert answer.status_code == 202, answer.text
    assert answer.headers["location"] == f"/jobs/{answer.json()['jobId']}"
    return answer.json()


def wait_until_finished(http: httpx.Client, job_id: str, timeout: float = 60) -> dict:
    infos: list[dict] = []

    def finished() -> bool:
        infos.append(http.get(f"/jobs/{job_id}").json())
        return infos[-1]["status"] not in ("queued", "running")

    wait_for(finished, timeout, f"job {job_id} to finish")
    return infos[-1]


def test_a_job_gives_what_layout_parsing_gives(http: httpx.Client) -> None:
    document = sample_pdf(3)
    job = submit(http, document, pages="1-3")
    assert job["status"] in ("queued", "running") and job["pagesDone"] == 0
    info = wait_until_finished(http, job["jobId"])
    assert info["status"] == "succeeded" and info["pagesDone"] == 3 and info["pagesTotal"] == 3
    assert info["startedAt"] and info["finishedAt"] and info["expiresAt"]

    result = http.get(f"/jobs/{job['jobId']}/result")
    direct = http.post("/layout-parsing", json={"file": base64.b64encode(document).decode()}).json()
    assert result.status_code == 200 and result.headers["x-job-status"] == "succeeded"
    body = result.json()
    assert body["errorCode"] == 0 and body["logId"] == info["logId"]
    assert body["result"]["dataInfo"] == direct["result"]["dataInfo"]
    assert body["result"]["summary"] == direct["result"]["summary"]
    pages = body["result"]["layoutParsingResults"]
    assert [p["markdown"]["text"] for p in pages] == [p["markdown"]["text"] for p in direct["result"]["layoutParsingResults"]]

    markdown = http.get(f"/jobs/{job['jobId']}/result", params={"format": "markdown"})
    assert markdown.headers["content-type"].startswith("text/markdown")
    assert markdown.text.strip() == "\n\n".join(p["markdown"]["text"] for p in pages).strip()


def test_events_replay_finished_pages_then_end(http: httpx.Client) -> None:
    job = submit(http, sample_pdf(2))
    wait_until_finished(http, job["jobId"])
    with http.stream("GET", f"/jobs/{job['jobId']}/events") as stream:
        names = [line.removeprefix("event: ") for line in stream.iter_lines() if line.startswith("event: ")]
    assert names[0] == "status" and names.count("page") == 2 and names[-1] == "final"


def test_a_bad_document_fails_the_job_with_the_sync_error(http: httpx.Client) -> None:
    job = submit(http, corrupt_pdf())
    info = wait_until_finished(http, job["jobId"])
    assert info["status"] == "failed" and info["error"]["code"] == 422
    answer = http.get(f"/jobs/{job['jobId']}/result")
    assert answer.status_code == 422 and answer.json()["errorMsg"] == info["error"]["message"]


def test_unknown_jobs_and_bad_requests_are_named(http: httpx.Client) -> None:
    missing = http.get("/jobs/0123456789abcdef")
    assert missing.status_code == 404 and "no job" in missing.json()["errorMsg"]
    assert http.delete("/jobs/0123456789abcdef").status_code == 404
    bad = http.post("/jobs", json={"file": base64.b64encode(sample_pdf(1)).decode(), "callbackUrl": "ftp://x"})
    assert bad.status_code == 422 and "callbackUrl" in bad.json()["errorMsg"]
    private = http.post("/jobs", json={"file": base64.b64encode(sample_pdf(1)).decode(), "callbackUrl": "http://127.0.0.1:9/"})
    assert private.status_code == 422 and "non-public" in private.json()["errorMsg"]
    assert http.get("/jobs", params={"cursor": "nonsense"}).status_code == 422


def test_cancel_stops_the_vlm_work(http: httpx.Client, vlm: SimulatorProcess) -> None:
    vlm.configure(latency=0.5)
    job = submit(http, sample_pdf(6))
    wait_for(lambda: http.get(f"/jobs/{job['jobId']}").json()["status"] == "running", 30, "the job to start")
    wait_for(lambda: any(c["request_id"] == job["logId"] for c in vlm.calls()), 30, "its first VLM call")
    cancelled = http.delete(f"/jobs/{job['jobId']}").json()
    assert cancelled["status"] == "cancelled" and cancelled["error"]["code"] == 409
    stopped = time.time()

    def idle() -> bool:
        ours = [c for c in vlm.calls() if c["request_id"] == job["logId"]]
        return all(c["finished"] is not None for c in ours)

    wait_for(idle, 10, "the job's VLM calls to end")
    late = [c for c in vlm.calls() if c["request_id"] == job["logId"] and c["received"] > stopped + 1.0]
    assert late == []
    assert http.get(f"/jobs/{job['jobId']}/result").status_code == 409
    assert http.get(f"/jobs/{job['jobId']}").json()["pagesDone"] < 6


def test_list_pages_through_the_callers_jobs(http: httpx.Client) -> None:
    ids = [submit(http, sample_pdf(1))["jobId"] for _ in range(3)]
    seen: list[str] = []
    cursor = None
    while True:
        page = http.get("/jobs", params={"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
        seen += [job["jobId"] for job in page["jobs"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert set(ids) <= set(seen) and len(seen) == len(set(seen))
    assert seen.index(ids[2]) < seen.index(ids[0])  # newest first


def test_a_full_queue_is_a_503_with_retry_after_and_a_large_document_a_413(start_gateway) -> None:
    # Nothing runs there (jobs wait), and a job may store 30,000 bytes.
    gateway = start_gateway(workers=1, job_concurrency=0, max_queued_jobs=1, job_max_document_bytes=30_000)
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        too_large = client.post("/jobs", json={"file": base64.b64encode(sample_pdf(3)).decode()})  # 31.7 kB
        assert too_large.status_code == 413 and "HPS_JOB_MAX_DOCUMENT_BYTES" in too_large.json()["errorMsg"]
        first = submit(client, sample_pdf(1))  # 28 kB
        assert client.get(f"/jobs/{first['jobId']}").json()["queuePosition"] == 0
        refused = client.post("/jobs", json={"file": base64.b64encode(sample_pdf(1)).decode()})
        assert refused.status_code == 503 and "HPS_MAX_QUEUED_JOBS" in refused.json()["errorMsg"]
        assert 1 <= int(refused.headers["retry-after"]) <= 600


def test_finished_jobs_are_deleted_after_their_time_to_live(start_gateway) -> None:
    gateway = start_gateway(workers=1, job_ttl=1, job_poll_interval=0.2)
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        job = submit(client, sample_pdf(1))
        assert wait_until_finished(client, job["jobId"])["status"] == "succeeded"
        wait_for(lambda: client.get(f"/jobs/{job['jobId']}").status_code == 404, 30, "the job's deletion")
        assert client.get(f"/jobs/{job['jobId']}/result").status_code == 404


def test_two_gateways_share_one_postgresql_queue(start_gateway, postgres_server, vlm: SimulatorProcess) -> None:
    """Several hosts: a job submitted to one gateway is run by whichever claims it and is
    read, followed and cancelled through any other."""
    vlm.configure(latency=0.2)
    with postgres_server.database() as url:
        first = start_gateway(workers=1, job_store=url, job_concurrency=0)  # takes no jobs itself
        second = start_gateway(workers=1, job_store=url)
        with httpx.Client(base_url=first.url, timeout=30) as one, httpx.Client(base_url=second.url, timeout=30) as two:
            job = submit(one, sample_pdf(3))
            info = wait_until_finished(two, job["jobId"])
            assert info["status"] == "succeeded" and info["pagesDone"] == 3
            assert one.get(f"/jobs/{job['jobId']}/result").json()["result"]["summary"]["pages"] == 3
            assert [j["jobId"] for j in one.get("/jobs").json()["jobs"]] == [job["jobId"]]
