"""The async jobs API: ``/jobs`` stores a document and answers 202 at once; the gateway
workers parse it in the background (``docparse.jobs.runner``), page by page into the
job store, so a job outlives the connection, the worker and a restart."""

from __future__ import annotations

import asyncio
import math
from typing import Annotated, Literal

import pybase64
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from docparse.documents import resolve_kind
from docparse.errors import (
    ConflictError,
    ErrorKind,
    LimitExceededError,
    NotFoundError,
    OverloadedError,
    error_for_status,
)
from docparse.jobs.model import JobInfo, JobList, JobRequest, JobStatus
from docparse.jobs.results import envelope_chunks, markdown_chunks
from docparse.jobs.store import NewJob
from docparse.protocol import log_id_for
from docparse.responses import LayoutParsingResponse
from gateway.errors import ModelResponse
from gateway.inputs import request_body, validated_request
from gateway.jobs_events import job_events
from gateway.keys import job_owner
from gateway.openapi import PARSING_ERRORS, error_responses, request_body as documented_body
from gateway.resources import Gateway, get_gateway
from gateway.urls import check_callback_url

router = APIRouter(tags=["jobs"])
JOB_ERRORS = error_responses(ErrorKind.NOT_FOUND, ErrorKind.UNAUTHENTICATED, ErrorKind.INTERNAL)


def caller(request: Request) -> str:
    """Whose job it is: the API key's name when keys are on, else the client's address
    (fair order between callers; GET /jobs lists the caller's)."""
    key = getattr(request.state, "api_key", None)
    if key:
        return job_owner(key)
    return f"address:{request.client.host if request.client else 'unknown'}"


def reader(request: Request) -> str | None:
    """Jobs are read only by their owner when keys are on; without keys, a job's
    unguessable id is what lets one read it."""
    return caller(request) if getattr(request.state, "api_key", None) else None


@router.post(
    "/jobs",
    status_code=202,
    summary="Submit a document as a background job",
    description="Same body as /layout-parsing (JSON or multipart), plus optional `callbackUrl`. "
    "The document is stored before the 202; poll `Location`, follow /jobs/{id}/events, "
    "or wait for the callback.",
    response_model=JobInfo,
    responses=PARSING_ERRORS,
    openapi_extra=documented_body(JobRequest),
)
async def submit_job(request: Request, gateway: Gateway = Depends(get_gateway)) -> ModelResponse:
    settings = gateway.settings
    data = await request_body(request, settings.gateway)
    log_id = log_id_for(data)
    request.state.log_id = log_id
    body = await validated_request(data, settings.gateway, log_id, JobRequest, models=gateway.models)
    callback = body.pop("callbackUrl", None)
    if callback is not None:
        await check_callback_url(callback, settings.gateway)
    document = pybase64.b64decode(body.pop("file"))
    if len(document) > settings.jobs.max_document_bytes:
        raise LimitExceededError(
            f"the document has {len(document)} bytes, more than a job may store "
            f"({settings.jobs.max_document_bytes}, HPS_JOB_MAX_DOCUMENT_BYTES)"
        )
    kind = resolve_kind(document, body.get("fileType"))
    body.pop("logId", None)
    new = NewJob(owner=caller(request), log_id=log_id, options=body, document=document, document_kind=kind,
                 callback_url=callback)
    try:
        info = await asyncio.to_thread(gateway.jobs.submit, new, settings.jobs.max_queued)
    except OverloadedError as exc:
        raise OverloadedError(exc.message, retry_after=await queue_wait(gateway)) from None
    gateway.runner.wake()
    return ModelResponse(info, status_code=202, headers={"Location": f"/jobs/{info.jobId}"})


async def queue_wait(gateway: Gateway) -> int:
    """Seconds until a place in the queue is likely: a recent job's run time (bounded)."""
    mean = await asyncio.to_thread(gateway.jobs.mean_duration)
    return int(min(max(math.ceil(mean or 30.0), 1), 600))


async def job_info(job_id: str, request: Request, gateway: Gateway) -> JobInfo:
    info = await asyncio.to_thread(gateway.jobs.info, job_id, reader(request))
    if info is None:
        raise NotFoundError(f"no job {job_id!r} (finished jobs are kept HPS_JOB_TTL seconds)")
    return info


@router.get("/jobs/{job_id}", summary="A job's status and progress", response_model=JobInfo, responses=JOB_ERRORS)
async def get_job(job_id: str, request: Request, gateway: Gateway = Depends(get_gateway)) -> ModelResponse:
    return ModelResponse(await job_info(job_id, request, gateway))


@router.get(
    "/jobs/{job_id}/result",
    summary="A job's result: the /layout-parsing envelope, or Markdown",
    description="The pages finished so far while the job runs (X-Job-Status says its status); "
    "a failed job answers its error as /layout-parsing would have; a cancelled one 409.",
    response_model=LayoutParsingResponse,
    responses={200: {"content": {"text/markdown": {"schema": {"type": "string"}}}}, **PARSING_ERRORS},
)
async def get_result(
    job_id: str,
    request: Request,
    format: Annotated[Literal["json", "markdown"], Query(description="json (the envelope) or markdown.")] = "json",
    gateway: Gateway = Depends(get_gateway),
) -> StreamingResponse:
    info = await job_info(job_id, request, gateway)
    request.state.log_id = info.logId
    if info.status is JobStatus.FAILED and info.error is not None:
        raise error_for_status(info.error.code, info.error.message)
    if info.status is JobStatus.CANCELLED:
        raise ConflictError(f"job {job_id} was cancelled; it has no result")
    record = await asyncio.to_thread(gateway.jobs.record, job_id)
    if record is None:
        raise NotFoundError(f"no job {job_id!r}")
    headers = {"X-Job-Status": info.status.value}
    pages = gateway.jobs.pages_in_order(job_id)  # read in the response's thread, batch by batch
    if format == "markdown":
        return StreamingResponse(markdown_chunks(pages), media_type="text/markdown; charset=utf-8", headers=headers)
    return StreamingResponse(envelope_chunks(record, pages), media_type="application/json", headers=headers)


@router.get(
    "/jobs/{job_id}/events",
    summary="Follow a job: Server-Sent Events",
    description="Events: `status` (a JobInfo) first and at each change, `page` (a PageEvent) for "
    "every stored page (finished ones replayed first; a page retried after a failure comes "
    "again), then `final` (a FinalEvent) or `error` (the error envelope) when the job ends.",
    responses={
        200: {
            "description": "Server-Sent Events; each `data:` is one JSON event.",
            "content": {"text/event-stream": {"schema": {"$ref": "#/components/schemas/JobEventData"}}},
        },
        **JOB_ERRORS,
    },
)
async def follow_job(job_id: str, request: Request, gateway: Gateway = Depends(get_gateway)) -> StreamingResponse:
    info = await job_info(job_id, request, gateway)
    return StreamingResponse(
        job_events(gateway, info),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.delete(
    "/jobs/{job_id}",
    summary="Cancel a job",
    description="A queued job never runs; a running one stops, its VLM work cancelled. "
    "A finished job is left as it is. Answers the job's status.",
    response_model=JobInfo,
    responses=JOB_ERRORS,
)
async def cancel_job(job_id: str, request: Request, gateway: Gateway = Depends(get_gateway)) -> ModelResponse:
    info = await asyncio.to_thread(gateway.jobs.cancel, job_id, reader(request), gateway.settings.jobs.ttl)
    if info is None:
        raise NotFoundError(f"no job {job_id!r}")
    gateway.runner.cancel_local(job_id)
    return ModelResponse(info)


@router.get("/jobs", summary="The caller's jobs, newest first", response_model=JobList, responses=JOB_ERRORS)
async def list_jobs(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=200, description="Jobs per page.")] = 20,
    cursor: Annotated[str | None, Query(max_length=200, description="nextCursor of the previous page.")] = None,
    gateway: Gateway = Depends(get_gateway),
) -> ModelResponse:
    jobs, next_cursor = await asyncio.to_thread(gateway.jobs.list, caller(request), limit, cursor)
    return ModelResponse(JobList(jobs=jobs, nextCursor=next_cursor))
