"""Every error answer of the gateway: the PaddleX envelope with the status of the error
table, ``Retry-After`` only where the error says retrying helps."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from docparse.errors import DocParseError, InvalidRequestError, as_error, error_for_status
from docparse.protocol import json_bytes, new_log_id
from docparse.responses import ErrorEnvelope

log = logging.getLogger("docparse.gateway")


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


def error_answer(log_id: str, error: DocParseError) -> ModelResponse:
    headers = {"Retry-After": str(error.retry_after)} if error.retry_after is not None else None
    envelope = ErrorEnvelope(logId=log_id, errorCode=error.status, errorMsg=error.message)
    return ModelResponse(envelope, status_code=error.status, headers=headers)


def register_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DocParseError)
    async def docparse_error(request: Request, exc: DocParseError) -> Response:
        return error_answer(request_log_id(request), exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        answer = error_answer(request_log_id(request), error_for_status(exc.status_code, str(exc.detail)))
        answer.headers.update(exc.headers or {})
        return answer

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return error_answer(request_log_id(request), InvalidRequestError(problems))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log_id = request_log_id(request)
        log.exception("logId=%s unexpected error", log_id)
        return error_answer(log_id, as_error(exc))
