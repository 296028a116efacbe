"""The REST gateway: PaddleOCR-VL HPS's ``/layout-parsing`` contract in front of Triton.

``create_app`` assembles it: the worker's resources in the lifespan, the middleware (CORS,
the access log, API keys and quotas), the error handlers and one router per API
(``gateway/routes/``). Run it with gunicorn (see gateway/gunicorn.conf.py):
``gunicorn -c gateway/gunicorn.conf.py``.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import AsyncIterator

from fastapi import FastAPI

from docparse import __version__, tracing
from docparse.glmocr import CompleteEvent, ErrorStreamEvent, PageStreamEvent, StartEvent
from docparse.jobs.model import JobInfo, JobRequest
from docparse.logs import configure_logging
from docparse.ocrflux import ConvertUrlRequest
from docparse.protocol import LayoutParsingRequest
from docparse.responses import ErrorEnvelope, FinalEvent, PageEvent
from docparse.restructure_pages import RestructurePagesRequest
from docparse.settings import Settings
from gateway.access import AccessLogMiddleware
from gateway.auth import AuthMiddleware
from gateway.cors import add_cors
from gateway.errors import register_error_handlers
from gateway.keys import load_keyring
from gateway.openapi import customise_openapi
from gateway.resources import Gateway
from gateway.routes import convert, glmocr, hps, jobs, ops, web


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.load()
    configure_logging(settings.general.log_level)
    tracing.configure(settings.general.trace_file)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with Gateway.open(settings) as gateway:
            app.state.gateway = gateway
            yield

    app = FastAPI(
        title="DocParse HPS",
        version=__version__,
        summary="Document layout parsing: PDF or image in, Markdown and JSON out, page by page.",
        lifespan=lifespan,
    )
    # Each middleware added wraps those added before: CORS outside the access log (which
    # then logs every request with its key's name), API keys and quotas inside it.
    keyring = load_keyring(settings.auth)
    if keyring.enabled:
        app.add_middleware(AuthMiddleware, keyring=keyring, open_paths=settings.auth.open_paths)
    app.add_middleware(AccessLogMiddleware, settings=settings.gateway)
    add_cors(app, settings.auth.cors_origins)
    register_error_handlers(app)
    app.include_router(hps.router)
    app.include_router(jobs.router)
    app.include_router(glmocr.router)
    app.include_router(convert.router)
    app.include_router(ops.router)
    app.include_router(web.router)
    app.mount(web.STATIC_PREFIX, web.static_files(), name="static")
    customise_openapi(
        app,
        [LayoutParsingRequest, JobRequest, ConvertUrlRequest, RestructurePagesRequest],
        event_data={
            "StreamEventData": [PageEvent, FinalEvent, ErrorEnvelope],
            "JobEventData": [JobInfo, PageEvent, FinalEvent, ErrorEnvelope],
            "OcrStreamEventData": [StartEvent, PageStreamEvent, CompleteEvent, ErrorStreamEvent],
        },
        open_paths=settings.auth.open_paths if keyring.enabled else None,
    )
    return app
