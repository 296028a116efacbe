"""OCRFlux's document conversion routes (``/convert/file``, ``/convert/url``) on our
pipeline: one ``/layout-parsing`` request each, with page retries and the cross-page
merge, under the same admission as every other route. Shapes: ``docparse.ocrflux``."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from docparse.ocrflux import (
    ConvertErrorBody,
    ConvertMetadata,
    ConvertOptions,
    ConvertResponse,
    ConvertUrlRequest,
    document_markdown,
    failed_pages,
    json_content,
    markdown_to_text,
)
from docparse.protocol import parse_request
from gateway.errors import ModelResponse
from gateway.openapi import PARSING_ERRORS, form_body
from gateway.parsing import ParsingCall, form_call, json_call
from gateway.resources import Gateway, get_gateway

router = APIRouter(tags=["OCRFlux API"])
CONVERT_ERRORS = {status: {**answer, "model": ConvertErrorBody} for status, answer in PARSING_ERRORS.items()}


@router.post(
    "/convert/file",
    summary="Convert a PDF or image to Markdown, text or JSON (OCRFlux API compatible)",
    description="`curl -F file=@doc.pdf -F output_format=markdown -F max_page_retries=2`. Pages are read "
    "with page retries, then merged across page breaks (tables, paragraphs, running headers, title levels) "
    "unless `skip_cross_page_merge`; pages still failing are listed in `failed_pages` and marked in place.",
    response_model=ConvertResponse,
    responses=CONVERT_ERRORS,
    openapi_extra=form_body(ConvertOptions, {"file": "The PDF or image."}),
)
async def convert_file(request: Request, gateway: Gateway = Depends(get_gateway)) -> ModelResponse:
    call, form, options = await form_call(request, gateway, {"file": 1}, ConvertOptions)
    upload = form.one_file("file")
    metadata = {"filename": upload.filename, "file_size": len(upload.data)}
    return await convert(call, options, upload.base64(), metadata)


@router.post(
    "/convert/url",
    summary="Convert the PDF or image at a URL (OCRFlux API compatible)",
    description="JSON `{\"url\": \"https://…/doc.pdf\", \"output_format\": \"markdown\"}`. The gateway fetches "
    "the URL under its URL rules: off unless HPS_ALLOW_URL_INPUT, public addresses only (unless "
    "HPS_URL_ALLOW_PRIVATE), redirects re-checked, size and time limits.",
    response_model=ConvertResponse,
    responses=CONVERT_ERRORS,
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/ConvertUrlRequest"}}}}},
)
async def convert_url(request: Request, gateway: Gateway = Depends(get_gateway)) -> ModelResponse:
    call, body = await json_call(request, gateway)
    options = parse_request(body, ConvertUrlRequest)
    return await convert(call, options, options.url, {"url": options.url})


async def convert(call: ParsingCall, options: ConvertOptions, file: str, metadata: dict) -> ModelResponse:
    """Parse, merge and shape one conversion (``file``: base64 or a URL the gateway fetches)."""
    settings = call.gateway.settings.gateway
    await call.validate(options.layout_request(file, call.log_id, settings.skip_cross_page_merge))
    if "file_size" not in metadata:  # a fetched URL: the size of what was fetched (base64: 4 chars, 3 bytes)
        fetched = call.body["file"]
        metadata["file_size"] = len(fetched) * 3 // 4 - fetched[-2:].count("=")
    result = (await call.collect()).result
    failed = failed_pages(result.layoutParsingResults)
    markdown = document_markdown(result)
    content: str | dict = markdown
    if options.output_format == "text":
        content = markdown_to_text(markdown)
    elif options.output_format == "json":
        content = json_content(result, markdown, failed)
    return ModelResponse(ConvertResponse(
        format=options.output_format, content=content, failed_pages=failed,
        metadata=ConvertMetadata(
            **metadata, pages_processed=len(result.layoutParsingResults), num_pages=result.dataInfo.numPages,
            fallback_pages=[f.page for f in failed],
        ),
        logId=call.log_id,
    ))
