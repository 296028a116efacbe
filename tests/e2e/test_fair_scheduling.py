"""Fair scheduling of VLM calls (issue #19) through the real gateway, tritonserver and
VLM stand-in: a one-page request is not queued behind the pages big documents have
waiting, and a job's call waits until no synchronous work does. Asserted on the order
in which the stand-in received the calls, never on how long anything took."""

from __future__ import annotations

import base64
import threading

import httpx
import pytest

from tests.conftest import VLM_CONCURRENCY
from tests.support.processes import wait_for
from testkit.documents import sample_pdf
from vlmsim import SimulatorProcess

# Layout off: a page is one VLM call, ready as soon as it is rendered (no layout model
# between). 120 calls: 48 run; the other 72 wait in the orchestrator, 16 for a VLM slot
# and the rest for the process's page budget (HPS_MAX_PAGES_IN_PROCESS, 64 pages), one
# document's next page at a time.
BIG_DOCUMENTS, BIG_PAGES = 15, 8
BIG_CALLS = BIG_DOCUMENTS * BIG_PAGES
PAGE_BUDGET = 64
LAYOUT_OFF = {"useLayoutDetection": False}


def encoded(pages: int) -> str:
    return base64.b64encode(sample_pdf(pages)).decode()


def test_a_one_page_request_and_a_job_beside_big_documents(start_gateway, vlm: SimulatorProcess) -> None:
    vlm.configure(latency=5.0)  # the first 48 calls hold every slot while the rest queue up
    gateway = start_gateway(max_concurrent_requests=BIG_DOCUMENTS + 1)
    answers: dict[str, int] = {}

    def parse(log_id: str, document: str, **options: object) -> None:
        with httpx.Client(base_url=gateway.url, timeout=120) as http:
            body = {"file": document, "logId": log_id, **options}
            answers[log_id] = http.post("/layout-parsing", json=body).status_code

    big = encoded(BIG_PAGES)
    threads = [threading.Thread(target=parse, args=(f"fair-big-{n}", big), kwargs=LAYOUT_OFF)
               for n in range(BIG_DOCUMENTS)]
    for thread in threads:
        thread.start()
    wait_for(lambda: vlm.stats()["running"] >= VLM_CONCURRENCY, 60, "the big documents to fill the VLM slots")

    one_page = encoded(1)
    with httpx.Client(base_url=gateway.url, timeout=120) as http:
        job = http.post("/jobs", json={"file": one_page, "logId": "fair-job", **LAYOUT_OFF})
        assert job.status_code == 202, job.text
        small = threading.Thread(target=parse, args=("fair-small", one_page), kwargs=LAYOUT_OFF)
        small.start()
        for thread in [*threads, small]:
            thread.join(120)
        wait_for(lambda: http.get(f"/jobs/{job.json()['jobId']}").json()["status"] == "succeeded", 60, "the job")
    assert answers == {**{f"fair-big-{n}": 200 for n in range(BIG_DOCUMENTS)}, "fair-small": 200}

    order = [call["request_id"] for call in vlm.calls()]  # as the stand-in received them
    assert order.count("fair-small") == 1 and order.count("fair-job") == 1
    big_before_small = sum(1 for r in order[:order.index("fair-small")] if r.startswith("fair-big-"))
    big_after_job = sum(1 for r in order[order.index("fair-job"):] if r.startswith("fair-big-"))
    assert sum(1 for r in order if r.startswith("fair-big-")) == BIG_CALLS
    # First come, first served, its page would wait behind the 15 documents' next pages for
    # the budget, then its call behind the 16 waiting for a VLM slot: about 48 + 15 + 16
    # big calls first. Fairly, it takes the next page and the next VLM slot to free.
    assert big_before_small < PAGE_BUDGET, f"{big_before_small} big calls went first"
    # The job is served once no synchronous page waits: after (nearly) every big one.
    assert big_after_job <= 2, f"{big_after_job} big calls came after the job's"
