"""The REST gateway: PaddleOCR-VL HPS's ``/layout-parsing`` contract in front of Triton.

Routes are thin: read and validate the request (gateway.inputs), take a slot
(gateway.limits), stream the document's events from Triton (gateway.triton) within one
end-to-end deadline, and answer with the PaddleX envelope or Server-Sent Events.
Run it with gunicorn (see gateway/gunicorn.conf.py): ``gunicorn -c gateway/gunicorn.conf.py``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, TypeVar

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from docparse import tracing
from docparse.errors import DeadlineExceededError, DocParseError
from docparse.protocol import (
    FINAL_EVENT,
    PAGE_EVENT,
    collect_events,
    error_envelope,
    json_bytes,
    new_log_id,
    success_envelope,
)
from docparse.settings import Settings
from gateway import metrics
from gateway.access import AccessLogMiddleware, configure_logging
from gateway.disconnect import unless_disconnected
from gateway.inputs import request_body, validated_request
from gateway.limits import Slots
from gateway.openapi import REQUEST_BODY, RESPONSES, STREAM_RESPONSES, customise_openapi
from gateway.triton import TritonConnection

log = logging.getLogger("docparse.gateway")
T = TypeVar("T")


@dataclass
class Gateway:
    """What one worker process holds for its whole life (made in the lifespan)."""

    settings: Settings
    triton: TritonConnection
    inference_slots: Slots
    other_slots: Slots
    http: httpx.AsyncClient


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging(settings.log_level)
    tracing.configure(settings.trace_file)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        gateway = Gateway(
            settings=settings,
            triton=TritonConnection(settings.triton_url, settings.max_body_bytes),
            inference_slots=Slots("inference", settings.max_concurrent_requests, settings.queue_timeout),
            other_slots=Slots("other", settings.max_concurrent_other_requests, settings.queue_timeout),
            http=httpx.AsyncClient(trust_env=False),
        )
        app.state.gateway = gateway
        try:
            yield
        finally:
            await gateway.triton.close()
            await gateway.http.aclose()

    app = FastAPI(
        title="DocParse HPS",
        version="0.1.0",
        summary="Document layout parsing: PDF or image in, Markdown and JSON out, page by page.",
        lifespan=lifespan,
    )
    app.add_middleware(AccessLogMiddleware, settings=settings)
    register_error_handlers(app)
    register_routes(app)
    customise_openapi(app)
    return app


# --- errors -----------------------------------------------------------------------------


def error_response(request: Request, status: int, message: str, headers: dict | None = None) -> JSONResponse:
    log_id = getattr(request.state, "log_id", None) or new_log_id()
    request.state.log_id = log_id
    return JSONResponse(error_envelope(log_id, status, message), status_code=status, headers=headers)


def register_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DocParseError)
    async def docparse_error(request: Request, exc: DocParseError) -> JSONResponse:
        headers = None
        if exc.status == 503:
            headers = {"Retry-After": str(request.app.state.gateway.inference_slots.retry_after)}
        return error_response(request, exc.status, exc.message, headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(request, exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("logId=%s unexpected error", getattr(request.state, "log_id", "-"))
        return error_response(request, 500, f"internal error ({type(exc).__name__}); see the gateway log")


# --- the parsing routes -------------------------------------------------------------------


async def prepare(request: Request) -> tuple[Gateway, dict[str, Any], float]:
    """Read and validate the request; returns the gateway, the Triton request body and
    the loop time of the deadline (which covers everything from here on)."""
    received = time.time()
    gateway: Gateway = request.app.state.gateway
    settings = gateway.settings
    deadline = asyncio.get_running_loop().time() + settings.inference_timeout
    data = await request_body(request, settings)
    given = data.get("logId")
    log_id = given[:128] if isinstance(given, str) and given else new_log_id()
    request.state.log_id = log_id
    tracing.mark("gateway.received", log_id, at=received)
    body = await within(deadline, settings, validated_request(data, settings, log_id))
    tracing.mark("gateway.validated", log_id)
    return gateway, body, deadline


async def within(deadline: float, settings: Settings, work: Awaitable[T]) -> T:
    """``await work`` unless the request's deadline passes first (then 504)."""
    try:
        async with asyncio.timeout_at(deadline):
            return await work
    except TimeoutError:
        metrics.TIMEOUTS.inc()
        raise DeadlineExceededError(
            f"the request did not finish within {settings.inference_timeout:g} s "
            "(HPS_INFERENCE_TIMEOUT); its work was cancelled"
        ) from None


def sse(event: dict) -> str:
    name = event.get("type") if event.get("type") in (PAGE_EVENT, FINAL_EVENT) else "error"
    return f"event: {name}\ndata: {json_bytes(event).decode()}\n\n"


def register_routes(app: FastAPI) -> None:
    @app.post(
        "/layout-parsing",
        tags=["parsing"],
        summary="Parse a document (PaddleOCR-VL HPS compatible)",
        description="JSON body (`file` as base64) or a multipart upload "
        "(`curl -F file=@doc.pdf -F pages=1-3`). Answers the whole document at once.",
        openapi_extra={"requestBody": REQUEST_BODY},
        responses=RESPONSES,
    )
    async def layout_parsing(request: Request) -> JSONResponse:
        gateway, body, deadline = await prepare(request)
        log_id = body["logId"]
        settings = gateway.settings

        async def parse() -> list[dict]:
            async with gateway.inference_slots.hold():
                return [event async for event in gateway.triton.events(body, log_id)]

        events = await within(deadline, settings, unless_disconnected(request, parse()))
        result = collect_events(log_id, events)
        request.state.pages = len(result["layoutParsingResults"])
        metrics.PAGES.inc(request.state.pages)
        return JSONResponse(success_envelope(log_id, result))

    @app.post(
        "/layout-parsing/stream",
        tags=["parsing"],
        summary="Parse a document, streaming one Server-Sent Event per page",
        description="Same request as /layout-parsing. Events: `page` (one per page, in "
        "order, as soon as it is ready), then `final` (dataInfo, timings); `error` "
        "(the error envelope) ends a stream that failed after it started. Errors found "
        "before the first page are plain error responses. Disconnecting cancels the work.",
        openapi_extra={"requestBody": REQUEST_BODY},
        responses=STREAM_RESPONSES,
    )
    async def layout_parsing_stream(request: Request) -> StreamingResponse:
        gateway, body, deadline = await prepare(request)
        log_id = body["logId"]
        settings = gateway.settings
        resources = AsyncExitStack()
        await within(deadline, settings, resources.enter_async_context(gateway.inference_slots.hold()))
        events = gateway.triton.events(body, log_id)
        resources.push_async_callback(events.aclose)
        try:
            # The first event decides the status: a bad document is a 422, not a 200.
            first = await within(deadline, settings, unless_disconnected(request, anext(events)))
        except BaseException:
            await resources.aclose()
            raise
        request.state.pages = 0

        async def stream() -> AsyncIterator[str]:
            event: dict | None = first
            try:
                while event is not None:
                    if event.get("type") == PAGE_EVENT:
                        request.state.pages += 1
                        metrics.PAGES.inc()
                    yield sse(event)
                    if event.get("type") == FINAL_EVENT:
                        return
                    event = await within(deadline, settings, anext(events))
            except DocParseError as exc:
                request.state.stream_error = exc.status
                yield sse(error_envelope(log_id, exc.status, exc.message))
            finally:
                await resources.aclose()

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "X-Log-Id": log_id},
        )

    # --- health and metrics ------------------------------------------------------------

    @app.get("/health", tags=["operations"], summary="Liveness: the gateway process answers")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get(
        "/health/ready",
        tags=["operations"],
        summary="Readiness: Triton, each model and the VLM answer",
        responses={503: {"description": "A part is not ready; `failing` names it."}},
    )
    async def ready(request: Request) -> JSONResponse:
        gateway: Gateway = request.app.state.gateway
        checks = {"triton": gateway.triton.check_ready(gateway.settings.health_check_timeout)}
        if gateway.settings.recognizer == "vlm":
            checks["vlm"] = check_vlm(gateway)
        results: dict[str, str] = {}
        failing = []
        for name, check in checks.items():
            try:
                await asyncio.wait_for(check, gateway.settings.health_check_timeout)
                results[name] = "ok"
            except Exception as exc:  # noqa: BLE001 - reported, named
                message = str(exc) or type(exc).__name__
                if isinstance(exc, TimeoutError):
                    message = f"no answer within {gateway.settings.health_check_timeout:g} s"
                results[name] = message
                failing.append(f"{name}: {message}")
        if failing:
            return JSONResponse(
                {"status": "unavailable", "failing": "; ".join(failing), "checks": results},
                status_code=503,
            )
        return JSONResponse({"status": "ready", "checks": results})

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics of all workers")
    async def prometheus() -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)


def vlm_health_url(vlm_url: str) -> str:
    """vLLM serves /health at its root, beside /v1."""
    root = vlm_url[: -len("/v1")] if vlm_url.endswith("/v1") else vlm_url
    return f"{root}/health"


async def check_vlm(gateway: Gateway) -> None:
    url = vlm_health_url(gateway.settings.vlm_url)
    try:
        response = await gateway.http.get(url, timeout=gateway.settings.health_check_timeout)
    except httpx.HTTPError as exc:
        raise RuntimeError(f"the VLM at {url} did not answer: {type(exc).__name__}") from None
    if response.status_code != 200:
        raise RuntimeError(f"the VLM at {url} answered {response.status_code}")

