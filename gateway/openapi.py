"""What /docs, /redoc and /openapi.json say: every request field described (from the
shared request model in docparse.protocol) and every response shape."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field

from docparse.protocol import LayoutParsingRequest

REQUEST_REF = "#/components/schemas/LayoutParsingRequest"


class ErrorEnvelope(BaseModel):
    logId: str = Field(description="The request's id (the caller's logId, or a new one).")
    errorCode: int = Field(description="The HTTP status of the error.", examples=[422])
    errorMsg: str = Field(description="What went wrong, naming the field or the limit.")


class Markdown(BaseModel):
    text: str = Field(description="The page as Markdown.")
    images: dict[str, str] = Field(description="Figure crops: relative path -> base64 JPEG.")
    isStart: bool = Field(description="The page starts with a new paragraph.")
    isEnd: bool = Field(description="The page ends with a finished paragraph.")


class PageResult(BaseModel):
    prunedResult: dict[str, Any] = Field(
        description="PaddleX-compatible page JSON: page_index, width, height, "
        "model_settings, parsing_res_list (block_label, block_content, block_bbox, "
        "block_id, block_order, error when a region failed), layout_det_res.boxes."
    )
    markdown: Markdown
    outputImages: dict[str, str] | None = Field(
        None, description="With visualize=true: the page with its layout boxes (base64 JPEG)."
    )
    inputImage: str | None = Field(None, description="With visualize=true: the rendered page.")


class DataInfo(BaseModel):
    type: str = Field(description="pdf or image.")
    numPages: int = Field(description="Pages in the document.")
    pages: list[dict[str, int]] = Field(description="Width and height of each parsed page.")


class LayoutParsingResult(BaseModel):
    layoutParsingResults: list[PageResult] = Field(description="One item per parsed page, in order.")
    dataInfo: DataInfo


class LayoutParsingResponse(BaseModel):
    logId: str
    errorCode: int = Field(0, description="0 on success.")
    errorMsg: str = Field("Success")
    result: LayoutParsingResult


_ERRORS = {
    400: "The body is not JSON or not a readable multipart form.",
    413: "The body, the document or its page count is over a limit.",
    422: "A field is wrong, or the file is not a readable PDF or image.",
    499: "The client disconnected; the work was cancelled.",
    503: "The server is busy (Retry-After says when to retry) or Triton is unavailable.",
    504: "HPS_INFERENCE_TIMEOUT passed; the work was cancelled.",
}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorEnvelope, "description": text} for status, text in _ERRORS.items()
}
RESPONSES = {200: {"model": LayoutParsingResponse, "description": "The parsed document."}, **ERROR_RESPONSES}
STREAM_RESPONSES = {
    200: {
        "description": "Server-Sent Events: `page` (data: {type, logId, pageIndex, result}), "
        "`final` (data: {type, logId, dataInfo, timings}), or `error` (the error envelope).",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    },
    **ERROR_RESPONSES,
}

REQUEST_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": {"$ref": REQUEST_REF}},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {"type": "string", "format": "binary", "description": "The PDF or image."},
                },
                "additionalProperties": {
                    "type": "string",
                    "description": "Any other request field, e.g. pages=1-3, dpi=200.",
                },
            }
        },
    },
}


def customise_openapi(app: FastAPI) -> None:
    """Add the request model (described field by field) to the generated schema."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, summary=app.summary, routes=app.routes
            )
            request_schema = LayoutParsingRequest.model_json_schema(
                ref_template="#/components/schemas/{model}"
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(request_schema.pop("$defs", {}))
            components["LayoutParsingRequest"] = request_schema
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
