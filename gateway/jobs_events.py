"""``/jobs/{id}/events``: a job followed as Server-Sent Events, from the store, so any
worker of any host can serve it whoever runs the job. Finished pages are replayed first,
then the store is looked at again for new pages and status changes as soon as this
process's runner moves a job on, else every HPS_JOB_POLL_INTERVAL."""

from __future__ import annotations

import asyncio
import time
from typing import AsyncIterator

import orjson

from docparse.jobs.model import JobInfo, JobStatus
from docparse.jobs.results import tally
from docparse.jobs.store import StoredPage
from docparse.protocol import json_bytes
from docparse.responses import PAGE_EVENT, ErrorEnvelope, FinalEvent, Timings
from gateway.resources import Gateway
from gateway.routes.hps import ERROR_EVENT, sse_event

STATUS_EVENT = "status"
KEEPALIVE_SECONDS = 15.0  # a comment line now and then keeps proxies from closing the stream


async def job_events(gateway: Gateway, info: JobInfo) -> AsyncIterator[bytes]:
    store, job_id = gateway.jobs, info.jobId
    yield sse_event(STATUS_EVENT, info)
    last_seq, last_sent = 0, time.monotonic()
    while True:
        pages, current = await asyncio.to_thread(lambda: (store.pages(job_id, last_seq), store.info(job_id)))
        if current is None:  # expired while followed
            return
        for page in pages:
            last_seq = page.seq
            yield page_event(current, page)
        if current.status != info.status or current.pagesDone != info.pagesDone:
            info = current
            yield sse_event(STATUS_EVENT, info)
            last_sent = time.monotonic()
        if current.status.finished:
            yield await _ending(gateway, current)
            return
        if pages:
            last_sent = time.monotonic()
        elif time.monotonic() - last_sent > KEEPALIVE_SECONDS:
            last_sent = time.monotonic()
            yield b": keepalive\n\n"
        await gateway.runner.wait_for_change(job_id, gateway.settings.jobs.poll_interval)


def page_event(info: JobInfo, page: StoredPage) -> bytes:
    """A ``page`` event (a PageEvent) around the page's JSON as it was stored: no page is
    parsed and serialised again to be followed."""
    head = json_bytes({"type": PAGE_EVENT, "logId": info.logId, "pageIndex": page.page_index,
                       "totalPages": info.pagesTotal or 0})
    return b"event: " + PAGE_EVENT.encode() + b"\ndata: " + head[:-1] + b',"result":' + page.data + b"}\n\n"


async def _ending(gateway: Gateway, info: JobInfo) -> bytes:
    """``final`` for a job with a result, else ``error`` with why it has none."""
    if info.status in (JobStatus.FAILED, JobStatus.CANCELLED):
        error = info.error
        envelope = ErrorEnvelope(
            logId=info.logId, errorCode=error.code if error else 500, errorMsg=error.message if error else info.status.value
        )
        return sse_event(ERROR_EVENT, envelope)
    store = gateway.jobs
    record, counted = await asyncio.to_thread(lambda: (store.record(info.jobId), tally(store.pages_in_order(info.jobId))))
    assert record is not None
    final = orjson.loads(record["final"]) if record["final"] else {}
    event = FinalEvent(
        logId=info.logId, dataInfo=counted.data_info(record), summary=counted.summary,
        timings=Timings(**final.get("timings", {})),
    )
    return sse_event(event.type, event)
