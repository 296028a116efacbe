"""From an HTTP request to a validated layout-parsing request body.

Bodies are read with a size limit (413 before anything is buffered past it); JSON and
multipart uploads end up as the same request dict; URL inputs are fetched only when
enabled, only over http(s), bounded in size and time, and never from private,
loopback or link-local addresses unless explicitly allowed (no SSRF).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import pybase64
from fastapi import Request

from docparse.errors import InvalidRequestError, LimitExceededError, MalformedBodyError, clip
from docparse.protocol import LayoutParsingRequest, check_json_limits, json_object, parse_request
from docparse.settings import GatewaySettings
from gateway import metrics

MAX_REDIRECTS = 3
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


async def validated_request(data: dict[str, Any], settings: GatewaySettings, log_id: str) -> dict[str, Any]:
    """Validate the request (errors name the field), fetch a URL input, set the logId."""
    parsed = parse_request(data, LayoutParsingRequest)
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


# --- URL inputs -----------------------------------------------------------------------------


async def fetch_url(url: str, settings: GatewaySettings) -> bytes:
    """The document at ``url``: http(s) only, public addresses only (unless allowed),
    at most HPS_MAX_BODY_BYTES, within HPS_URL_FETCH_TIMEOUT seconds, few redirects."""
    try:
        async with asyncio.timeout(settings.url_fetch_timeout):
            async with httpx.AsyncClient(follow_redirects=False, trust_env=False) as client:
                for _ in range(MAX_REDIRECTS + 1):
                    await check_url_target(url, settings.url_allow_private)
                    async with client.stream("GET", url) as response:
                        if response.is_redirect and "location" in response.headers:
                            url = urljoin(url, response.headers["location"])
                            continue
                        if response.status_code != 200:
                            raise InvalidRequestError(
                                f"field 'file': fetching the URL gave HTTP {response.status_code}"
                            )
                        return await read_limited(response, settings.max_body_bytes)
                raise InvalidRequestError(f"field 'file': more than {MAX_REDIRECTS} redirects")
    except TimeoutError:
        raise InvalidRequestError(
            f"field 'file': the URL did not deliver within {settings.url_fetch_timeout:g} s"
        ) from None
    except httpx.HTTPError as exc:
        raise InvalidRequestError(f"field 'file': the URL could not be fetched: {exc}") from None


async def read_limited(response: httpx.Response, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise LimitExceededError(
                f"field 'file': the document at the URL is larger than {limit} bytes "
                "(HPS_MAX_BODY_BYTES)"
            )
        chunks.append(chunk)
    return b"".join(chunks)


async def check_url_target(url: str, allow_private: bool) -> None:
    """Refuse non-http(s) URLs and hosts that resolve to non-public addresses."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequestError("field 'file': only http:// and https:// URLs are accepted")
    if allow_private:
        return
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            parts.hostname, parts.port or (443 if parts.scheme == "https" else 80),
            type=socket.SOCK_STREAM,
        )
    except OSError as exc:
        raise InvalidRequestError(f"field 'file': the URL's host cannot be resolved: {exc}") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global or address.is_multicast:
            raise InvalidRequestError(
                f"field 'file': the URL points to a non-public address ({address}); "
                "such URLs are refused (HPS_URL_ALLOW_PRIVATE)"
            )
