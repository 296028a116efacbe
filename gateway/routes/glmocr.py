"""The GLM-OCR API server's routes (``/api/ocr/*``, ``/api/info``) on our pipeline.

Each image or document becomes one ``/layout-parsing`` request through Triton, under
the same slot, deadline, body and page limits and API keys as every other route, so the
one VLM bound holds for all APIs together. The shapes are ``docparse.glmocr``'s."""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import aclosing
from typing import AsyncIterator

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from docparse import __version__, glmocr
from docparse.errors import DocParseError, InvalidRequestError
from docparse.extraction import InvalidAnswerError, checked_answer
from docparse.glmocr import (
    BatchForm,
    BatchItem,
    BatchResponse,
    CompleteEvent,
    DocumentForm,
    DocumentResponse,
    ErrorStreamEvent,
    ExtractForm,
    ExtractResponse,
    InfoResponse,
    OcrErrorBody,
    PageStreamEvent,
    RecognizeForm,
    RecognizeResponse,
    StartEvent,
)
from docparse.protocol import json_bytes
from docparse.recognition.cpu_ocr import CpuOcrRecognizer
from docparse.recognition.tasks import TaskTable
from docparse.responses import FinalEvent, PageEvent, StreamEvent
from gateway.disconnect import unless_disconnected
from gateway.errors import ModelResponse
from gateway.inputs import Upload, validated_request
from gateway.openapi import PARSING_ERRORS, form_body
from gateway.parsing import ParsingCall, form_call
from gateway.resources import Gateway, get_gateway

log = logging.getLogger("docparse.gateway.glmocr")
router = APIRouter(tags=["GLM-OCR API"])
OCR_ERRORS = {status: {**answer, "model": OcrErrorBody} for status, answer in PARSING_ERRORS.items()}
# An extraction answer that did not fit is asked again once, sampling a little.
RETRY_TEMPERATURE = 0.3


@router.post(
    "/api/ocr/recognize",
    summary="Read one image: text, formula (LaTeX) or table (GLM-OCR server compatible)",
    description="`curl -F image=@line.png -F task=text`. The whole image is one region read with "
    "GLM-OCR's prompt for the task.",
    response_model=RecognizeResponse,
    responses=OCR_ERRORS,
    openapi_extra=form_body(RecognizeForm, {"image": "The image (PNG, JPEG, …)."}),
)
async def recognize(request: Request, gateway: Gateway = Depends(get_gateway)) -> ModelResponse:
    started = time.perf_counter()
    call, form, fields = await form_call(request, gateway, {"image": 1}, RecognizeForm)
    image = form.one_file("image")
    await call.validate(glmocr.image_request(image.base64(), fields.task, fields, call.log_id))
    answer = await call.collect()
    text = glmocr.recognized_text(answer)
    elapsed = round(time.perf_counter() - started, 3)
    return ModelResponse(RecognizeResponse(text=text, task=fields.task, time=elapsed, logId=call.log_id))


@router.post(
    "/api/ocr/extract",
    summary="Extract JSON that fits a schema from one image (GLM-OCR server compatible)",
    description="`curl -F image=@id.png -F schema='{\"name\": \"\", \"date\": \"\"}'`: a JSON Schema or a "
    "GLM-OCR template. The VLM answers with structured output (guided decoding) and the answer is "
    "validated against the schema; an answer that does not fit is asked again once, then a 422 "
    "that carries `raw`. Needs a VLM: with the CPU recognizer, 501.",
    response_model=ExtractResponse,
    responses=OCR_ERRORS,
    openapi_extra=form_body(ExtractForm, {"image": "The image (PNG, JPEG, …)."}),
)
async def extract(request: Request, gateway: Gateway = Depends(get_gateway)) -> ModelResponse:
    started = time.perf_counter()
    call, form, fields = await form_call(request, gateway, {"image": 1}, ExtractForm)
    image = form.one_file("image")
    schema = fields.json_schema()
    await call.validate(glmocr.extract_request(image.base64(), fields, call.log_id))
    raw = glmocr.recognized_text(await call.collect())
    try:
        data = checked_answer(raw, schema)
    except InvalidAnswerError as first:
        log.warning("logId=%s extraction answer refused, asking once more: %s", call.log_id, first.message)
        call.body = {**call.body, "temperature": RETRY_TEMPERATURE}
        raw = glmocr.recognized_text(await call.collect())
        data = checked_answer(raw, schema)  # InvalidAnswerError: the 422 with raw
    elapsed = round(time.perf_counter() - started, 3)
    return ModelResponse(ExtractResponse(data=data, raw=raw, time=elapsed, logId=call.log_id))


@router.post(
    "/api/ocr/batch",
    summary="Read several images at once (GLM-OCR server compatible)",
    description="`curl -F images=@a.png -F images=@b.png -F task=text`. All images are read at once "
    "(one slot for the batch, every image in flight, so the VLM stays full); a bad image gets its "
    "own `error` in `results` and never fails the others. At most HPS_MAX_BATCH_IMAGES images.",
    response_model=BatchResponse,
    responses=OCR_ERRORS,
    openapi_extra=form_body(BatchForm, {"images": "The images (repeat the field for each)."}, repeated=True),
)
async def batch(request: Request, gateway: Gateway = Depends(get_gateway)) -> ModelResponse:
    started = time.perf_counter()
    most = gateway.settings.gateway.max_batch_images
    call, form, fields = await form_call(request, gateway, {"images": most}, BatchForm)
    images = form.files.get("images")
    if not images:
        form.one_file("images")  # raises: the field is required

    async def read_all() -> list[BatchItem]:
        async with gateway.inference_slots.hold():
            return list(await asyncio.gather(*(read_one(call, index, image, fields) for index, image in enumerate(images))))

    results = await call.within(unless_disconnected(request, read_all()))
    elapsed = time.perf_counter() - started
    return ModelResponse(BatchResponse(
        results=results, total_time=round(elapsed, 3), throughput=glmocr.rate(len(results), elapsed, "imgs"),
        logId=call.log_id,
    ))


async def read_one(call: ParsingCall, index: int, image: Upload, fields: BatchForm) -> BatchItem:
    """One image of a batch: its text, or its own error."""
    log_id = f"{call.log_id}-{index}"
    try:
        if not image.data:
            raise InvalidRequestError(f"images[{index}] ({image.filename}): the file is empty")
        body = await validated_request(
            glmocr.image_request(image.base64(), fields.task, fields, log_id), call.gateway.settings.gateway, log_id,
            models=call.gateway.models,
        )
        answer = await call.collect_document(body, log_id)
    except DocParseError as exc:
        return BatchItem(index=index, error=exc.message, errorCode=exc.status)
    return BatchItem(index=index, text=glmocr.recognized_text(answer))


async def document_call(request: Request, gateway: Gateway) -> ParsingCall:
    call, form, fields = await form_call(request, gateway, {"file": 1}, DocumentForm)
    document = form.one_file("file")
    await call.validate(glmocr.document_request(document.base64(), fields, call.log_id))
    return call


@router.post(
    "/api/ocr/document",
    summary="Parse a PDF or image: layout, then every region read (GLM-OCR server compatible)",
    description="`curl -F file=@doc.pdf -F pages=1-3 -F dpi=200`. Each page's `text` is its Markdown, "
    "the same as /layout-parsing gives; `regions` are the layout blocks with what was read.",
    response_model=DocumentResponse,
    responses=OCR_ERRORS,
    openapi_extra=form_body(DocumentForm, {"file": "The PDF or image."}),
)
async def document(request: Request, gateway: Gateway = Depends(get_gateway)) -> ModelResponse:
    started = time.perf_counter()
    call = await document_call(request, gateway)
    answer = await call.collect()
    tasks = TaskTable.from_settings(gateway.settings.recognition)
    pages = [glmocr.ocr_page(page, tasks) for page in answer.result.layoutParsingResults]
    elapsed = time.perf_counter() - started
    return ModelResponse(DocumentResponse(
        pages=pages, total_pages=answer.result.dataInfo.numPages, parsed_pages=len(pages),
        total_time=round(elapsed, 3), throughput=glmocr.rate(len(pages), elapsed, "pgs"), logId=call.log_id,
    ))


@router.post(
    "/api/ocr/document/stream",
    summary="Parse a PDF or image, one Server-Sent Event per page (GLM-OCR server compatible)",
    description="Same form as /api/ocr/document. Each `data:` is one JSON event: `start` (total_pages, "
    "pages_to_parse), `page` (a page as /api/ocr/document gives it, with `progress`, in order, as soon "
    "as it is done), then `complete` (total_time, throughput); `error` ends a stream that failed after "
    "it started. Errors before the first page are plain error answers. Disconnecting cancels the work.",
    responses={
        200: {"description": "Server-Sent Events; each `data:` is one JSON event.",
              "content": {"text/event-stream": {"schema": {"$ref": "#/components/schemas/OcrStreamEventData"}}}},
        **OCR_ERRORS,
    },
    openapi_extra=form_body(DocumentForm, {"file": "The PDF or image."}),
)
async def document_stream(request: Request, gateway: Gateway = Depends(get_gateway)) -> StreamingResponse:
    started = time.perf_counter()
    call = await document_call(request, gateway)
    events = await call.stream()
    tasks = TaskTable.from_settings(gateway.settings.recognition)
    return StreamingResponse(
        ocr_events(call, events, tasks, started),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "X-Log-Id": call.log_id},
    )


async def ocr_events(
    call: ParsingCall, events: AsyncIterator[StreamEvent], tasks: TaskTable, started: float
) -> AsyncIterator[bytes]:
    """Our events as the GLM-OCR server's: start, each page, complete (or error)."""
    done = 0
    try:
        async with aclosing(events):
            async for event in events:
                if isinstance(event, PageEvent):
                    if done == 0:
                        yield sse_data(StartEvent(
                            total_pages=event.numPages or event.totalPages, pages_to_parse=event.totalPages,
                            logId=call.log_id,
                        ))
                    done += 1
                    page = glmocr.ocr_page(event.result, tasks)
                    yield sse_data(PageStreamEvent(**page.model_dump(), progress=f"{done}/{event.totalPages}"))
                elif isinstance(event, FinalEvent):
                    elapsed = time.perf_counter() - started
                    yield sse_data(CompleteEvent(
                        total_time=round(elapsed, 3), throughput=glmocr.rate(done, elapsed, "pgs"), logId=call.log_id
                    ))
    except DocParseError as exc:
        call.request.state.stream_error = exc.status
        yield sse_data(ErrorStreamEvent(error=exc.message, errorCode=exc.status, logId=call.log_id))


def sse_data(event: BaseModel) -> bytes:
    """One event as the GLM-OCR server sends it: a ``data:`` line, no event name."""
    return b"data: " + json_bytes(event) + b"\n\n"


@router.get("/api/info", summary="What this server runs and can do (GLM-OCR server compatible)", response_model=InfoResponse)
async def info(gateway: Gateway = Depends(get_gateway)) -> ModelResponse:
    settings = gateway.settings
    uses_vlm = settings.recognition.engine == "vlm"
    features = [f for f in glmocr.FEATURES if uses_vlm or not f.startswith("Information Extraction")]
    return ModelResponse(InfoResponse(
        model=settings.vlm.model if uses_vlm else CpuOcrRecognizer.name,
        version=__version__,
        features=features,
        layout_detection=True,
        layout_model=settings.layout.model_name,
        recognizer=f"vlm:{settings.vlm.model}" if uses_vlm else CpuOcrRecognizer.name,
        models=[p.name for p in settings.vlm.profile_list] if uses_vlm else [CpuOcrRecognizer.name],
        endpoints=glmocr.ENDPOINTS,
    ))
