"""From an HTTP request to a validated layout-parsing request body.

Bodies are read with a size limit (413 before anything is buffered past it); JSON and
multipart uploads end up as the same request dict; URL inputs are fetched only when
enabled (``gateway.urls``: http(s) only, bounded in size and time, never from private,
loopback or link-local addresses unless explicitly allowed).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Sequence

import pybase64
from fastapi import Request

from docparse.errors import InvalidRequestError, LimitExceededError, MalformedBodyError, clip
from docparse.protocol import LayoutParsingRequest, check_json_limits, json_object, parse_request
from docparse.settings import GatewaySettings
from gateway import metrics
from gateway.urls import fetch_url

# Form fields that stay text even when they look like JSON ("1" for pages is a string).
_TEXT_FIELDS = {"file", "pages", "logId", "promptLabel", "layoutMergeBboxesMode", "layoutShapeMode"}


def too_large(limit: int) -> LimitExceededError:
    metrics.REJECTIONS.labels(reason="too_large").inc()
    return LimitExceededError(
        f"the request body is larger than {limit} bytes (HPS_MAX_BODY_BYTES); "
        "send fewer pages or a smaller file"
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing it as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    body = b"".join(chunks)
    request._body = body  # lets request.form() parse what was read here
    return body


async def request_body(request: Request, settings: GatewaySettings) -> dict[str, Any]:
    """The request as a dict: from JSON, or from a multipart/form upload."""
    body = await read_body(request, settings.max_body_bytes)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        return await form_body(request)
    if not body.strip():
        raise MalformedBodyError("the request body is empty; send a JSON object with 'file'")
    return json_object(body, MalformedBodyError)


async def form_body(request: Request) -> dict[str, Any]:
    """A multipart upload as a request dict: the file part becomes base64, other parts
    are JSON values where that parses (``dpi=200``, ``useLayoutDetection=false``)."""
    try:
        form = await request.form(max_files=1, max_fields=100)
    except Exception as exc:  # noqa: BLE001 - python-multipart raises several kinds
        raise MalformedBodyError(f"the multipart body could not be read: {exc}") from None
    data: dict[str, Any] = {}
    for key in form.keys():
        values = form.getlist(key)
        if key == "file":
            upload = values[0]
            raw = await upload.read() if hasattr(upload, "read") else str(upload).encode()
            data["file"] = pybase64.b64encode(raw).decode("ascii") if hasattr(upload, "read") else str(upload)
            continue
        parsed = [form_value(key, value) for value in values if isinstance(value, str)]
        data[key] = parsed[0] if len(parsed) == 1 else parsed
    return data


def form_value(key: str, value: str) -> Any:
    """A form field as the JSON value it holds (``dpi=200``), else as its text; JSON
    past the request's limits is refused, not passed on as text."""
    if key in _TEXT_FIELDS:
        return value
    check_json_limits(value, MalformedBodyError, f"form field '{clip(key)}'")
    try:
        return json.loads(value)
    except ValueError:
        return value


async def validated_request(
    data: dict[str, Any], settings: GatewaySettings, log_id: str, model: type[LayoutParsingRequest] = LayoutParsingRequest,
    models: Sequence[str] = (),
) -> dict[str, Any]:
    """Validate the request as ``model`` (errors name the field; a VLM profile not among
    ``models``, when given, too), fetch a URL input, set the logId."""
    parsed = parse_request(data, model)
    if models and parsed.model is not None and parsed.model not in models:
        raise InvalidRequestError(f"field 'model': unknown model {parsed.model!r}; known: {', '.join(models)}")
    if parsed.file.startswith(("http://", "https://")):
        if not settings.allow_url_input:
            raise InvalidRequestError(
                "field 'file': URL inputs are disabled on this server "
                "(HPS_ALLOW_URL_INPUT=false); send the file as base64"
            )
        document = await fetch_url(parsed.file, settings)
        data = {**data, "file": pybase64.b64encode(document).decode("ascii")}
    else:
        parsed.file_bytes()  # refuses bad base64 here, before any work is queued
    return {**data, "logId": log_id}


@dataclass(frozen=True)
class Upload:
    """One uploaded file of a multipart form."""

    filename: str
    data: bytes

    def base64(self) -> str:
        return pybase64.b64encode(self.data).decode("ascii")


@dataclass
class Form:
    """A multipart form: its text fields (one value each) and its files by field name."""

    fields: dict[str, str]
    files: dict[str, list[Upload]]

    def one_file(self, name: str) -> Upload:
        """The one file of field ``name``; 422 naming it when it is missing or empty."""
        uploads = self.files.get(name)
        if not uploads:
            raise InvalidRequestError(f"field '{name}': required: send the file as a multipart part, e.g. curl -F {name}=@page.png")
        if len(uploads) > 1:
            raise InvalidRequestError(f"field '{name}': send one file, got {len(uploads)}")
        if not uploads[0].data:
            raise InvalidRequestError(f"field '{name}': the file is empty")
        return uploads[0]


async def multipart_form(request: Request, settings: GatewaySettings, files: dict[str, int]) -> Form:
    """A multipart form read within the body limit. ``files``: each file field and the
    most files it takes (more is a 413); a file sent in another field is read as that
    field's text (``-F schema=@schema.json``)."""
    await read_body(request, settings.max_body_bytes)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "multipart/form-data":
        raise MalformedBodyError(
            f"send a multipart/form-data body (curl -F {next(iter(files))}=@page.png), not {content_type or 'no content type'}"
        )
    most = sum(files.values())
    try:
        form = await request.form(max_files=most + 1, max_fields=100)
    except Exception as exc:  # noqa: BLE001 - python-multipart raises several kinds
        if "Too many files" in str(exc):
            raise _too_many_files(files) from None
        raise MalformedBodyError(f"the multipart body could not be read: {exc}") from None
    result = Form({}, {})
    for key, value in form.multi_items():
        if key in files and hasattr(value, "read"):
            result.files.setdefault(key, []).append(Upload(value.filename or key, await value.read()))
            continue
        text = (await value.read()).decode("utf-8", "replace") if hasattr(value, "read") else value
        if key in result.fields:
            raise InvalidRequestError(f"field '{clip(key)}': given more than once")
        result.fields[key] = text
    for key, most_files in files.items():
        if len(result.files.get(key, [])) > most_files:
            raise _too_many_files({key: most_files})
    return result


def _too_many_files(files: dict[str, int]) -> LimitExceededError:
    metrics.REJECTIONS.labels(reason="too_large").inc()
    limits = ", ".join(
        f"'{name}' at most {most}" + (" (HPS_MAX_BATCH_IMAGES)" if most > 1 else "") for name, most in files.items()
    )
    return LimitExceededError(f"too many files: {limits}; send the rest in another request")
