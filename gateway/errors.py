"""Every error answer of the gateway: the PaddleX envelope with the status of the error
table, ``Retry-After`` only where the error says retrying helps.

Client errors (4xx) are logged by the access log's one line, never with a traceback;
only an unexpected exception (a 500) gets one."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from docparse.errors import DocParseError, InvalidRequestError, as_error, error_for_status
from docparse.glmocr import OcrErrorBody
from docparse.ocrflux import ConvertErrorBody
from docparse.protocol import describe_problems, json_bytes, new_log_id
from docparse.responses import ErrorEnvelope

log = logging.getLogger("docparse.gateway")
OCR_API_PREFIX = "/api/ocr/"  # the GLM-OCR server's routes (gateway/routes/glmocr.py)
CONVERT_API_PREFIX = "/convert/"  # OCRFlux's routes (gateway/routes/convert.py)


class ModelResponse(Response):
    """A response model as JSON, through the project's one encoder."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        assert isinstance(content, BaseModel)
        return json_bytes(content)


def request_log_id(request: Request) -> str:
    """The request's logId, a new one if it failed before its body was read."""
    if getattr(request.state, "log_id", None) is None:
        request.state.log_id = new_log_id()
    return request.state.log_id


def error_answer(log_id: str, error: DocParseError, path: str = "") -> ModelResponse:
    """The error's envelope; on the GLM-OCR API's paths also its ``error`` (and an
    extraction's ``raw`` answer), on OCRFlux's its ``status`` and ``error``, as those
    servers' clients read them."""
    headers = {"Retry-After": str(error.retry_after)} if error.retry_after is not None else None
    envelope: ErrorEnvelope = ErrorEnvelope(logId=log_id, errorCode=error.status, errorMsg=error.message)
    if path.startswith(OCR_API_PREFIX):
        envelope = OcrErrorBody(**envelope.model_dump(), error=error.message, raw=getattr(error, "raw", None))
    elif path.startswith(CONVERT_API_PREFIX):
        envelope = ConvertErrorBody(**envelope.model_dump(), error=error.message)
    return ModelResponse(envelope, status_code=error.status, headers=headers)


def register_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DocParseError)
    async def docparse_error(request: Request, exc: DocParseError) -> Response:
        return error_answer(request_log_id(request), exc, request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        error = error_for_status(exc.status_code, str(exc.detail))
        answer = error_answer(request_log_id(request), error, request.url.path)
        answer.headers.update(exc.headers or {})
        return answer

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        error = InvalidRequestError(describe_problems(exc.errors()))
        return error_answer(request_log_id(request), error, request.url.path)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        """A real 500. Starlette passes the exception on to the server after this
        answer, and uvicorn logs its traceback; this line ties it to the logId."""
        log_id = request_log_id(request)
        error = as_error(exc)
        log.error("logId=%s unexpected error (traceback follows): %s", log_id, error.message)
        return error_answer(log_id, error, request.url.path)
