"""PaddleOCR-VL's high-performance serving API: ``/layout-parsing`` (the whole document
in PaddleX's envelope), ``/layout-parsing/stream`` (Server-Sent Events, page by page) and
``/restructure-pages`` (pages parsed separately, restructured as one document). The first
two read the same request; ``gateway.parsing`` does everything but shaping the answer."""

from __future__ import annotations

from contextlib import aclosing
from typing import AsyncIterator

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel

from docparse.errors import DocParseError
from docparse.protocol import LayoutParsingRequest, json_bytes, parse_request
from docparse.responses import ErrorEnvelope, LayoutParsingResponse, StreamEvent
from docparse.restructure_pages import MAX_ENTRIES, RestructurePagesRequest, RestructurePagesResponse
from gateway.errors import ModelResponse
from gateway.openapi import PARSING_ERRORS, request_body
from gateway.parsing import ParsingCall, json_call, parsing_call
from gateway.resources import Gateway, get_gateway

router = APIRouter(tags=["parsing"])
ERROR_EVENT = "error"


@router.post(
    "/layout-parsing",
    summary="Parse a document (PaddleOCR-VL HPS compatible)",
    description="JSON body (`file` as base64) or a multipart upload "
    "(`curl -F file=@doc.pdf -F pages=1-3`). Answers the whole document at once.",
    response_model=LayoutParsingResponse,
    responses=PARSING_ERRORS,
    openapi_extra=request_body(LayoutParsingRequest),
)
async def layout_parsing(call: ParsingCall = Depends(parsing_call)) -> ModelResponse:
    return ModelResponse(await call.collect())


@router.post(
    "/layout-parsing/stream",
    summary="Parse a document, streaming one Server-Sent Event per page",
    description="Same request as /layout-parsing. Events: `page` (a PageEvent, one per "
    "page, in order, as soon as it is ready), then `final` (a FinalEvent: dataInfo, "
    "timings); `error` (the error envelope) ends a stream that failed after it started. "
    "Errors found before the first page are plain error responses. Disconnecting "
    "cancels the work.",
    responses={
        200: {
            "description": "Server-Sent Events; each `data:` is one JSON event.",
            "content": {"text/event-stream": {"schema": {"$ref": "#/components/schemas/StreamEventData"}}},
        },
        **PARSING_ERRORS,
    },
    openapi_extra=request_body(LayoutParsingRequest),
)
async def layout_parsing_stream(call: ParsingCall = Depends(parsing_call)) -> StreamingResponse:
    events = await call.stream()
    return StreamingResponse(
        sse_body(call, events),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "X-Log-Id": call.log_id},
    )


async def sse_body(call: ParsingCall, events: AsyncIterator[StreamEvent]) -> AsyncIterator[bytes]:
    """Each event as it comes; an error after the stream started ends it as an event.
    Closing this body (the client left) closes the events: the slot is freed and the
    work in Triton cancelled."""
    try:
        async with aclosing(events):
            async for event in events:
                yield sse_event(event.type, event)
    except DocParseError as exc:
        call.request.state.stream_error = exc.status
        yield sse_event(ERROR_EVENT, ErrorEnvelope(logId=call.log_id, errorCode=exc.status, errorMsg=exc.message))


def sse_event(name: str, data: BaseModel) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + json_bytes(data) + b"\n\n"


@router.post(
    "/restructure-pages",
    summary="Restructure separately parsed pages as one document (PaddleOCR-VL HPS compatible)",
    description="Pages' `prunedResult`s (and `markdownImages`) from /layout-parsing, in document order, "
    "restructured as one document: tables continued across pages joined (`mergeTables`), titles "
    "relevelled (`relevelTitles`), paragraphs cut by a page break joined, running headers and page "
    "numbers out of the Markdown; `concatenatePages` answers one page. Through Triton's "
    "`restructure-pages` model.",
    response_model=RestructurePagesResponse,
    responses=PARSING_ERRORS,
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/RestructurePagesRequest"}}}}},
)
async def restructure_pages(request: Request, gateway: Gateway = Depends(get_gateway)) -> Response:
    call, body = await json_call(request, gateway, MAX_ENTRIES)
    parse_request(body, RestructurePagesRequest)  # a bad field is a 422 here, before Triton
    timeout = gateway.settings.gateway.inference_timeout
    envelope = await call.within(gateway.triton.restructure({**body, "logId": call.log_id}, call.log_id, timeout))
    return Response(json_bytes(envelope), media_type="application/json")
