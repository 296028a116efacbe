"""Sending one request and recording what came back: over HTTP to the gateway (aiohttp,
its event stream read by httpx-sse as in the CLI), over gRPC straight to Triton, or
straight to the VLM stand-in (no service: the capacity bound)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import AsyncIterator, Callable, Protocol

import aiohttp
import httpx
from httpx_sse import EventSource, SSEError

from bench.documents import Document
from docparse.protocol import json_bytes


class RequestFailed(Exception):
    """A request that did not succeed: ``kind`` groups the errors in the report."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


class Sender(Protocol):
    name: str

    def events(self, body: dict) -> AsyncIterator[dict]: ...

    async def aclose(self) -> None: ...


async def sse_events(response: aiohttp.ClientResponse) -> AsyncIterator[tuple[str, dict]]:
    """(event name, JSON data) of each Server-Sent Event, decoded by httpx-sse as in the
    CLI (aiohttp has no SSE reader, and its line reader refuses a page's long lines):
    aiohttp's bytes go in as the body of an httpx.Response, which costs no connection."""
    stream = httpx.Response(
        response.status, headers={"Content-Type": response.content_type}, content=response.content.iter_any()
    )
    async for event in EventSource(stream).aiter_sse():
        if event.data:  # an event without data (a bare ``retry:``) carries nothing to read
            yield event.event, json.loads(event.data)


def envelope_message(body: bytes) -> str:
    try:
        return str(json.loads(body).get("errorMsg"))[:300]
    except (ValueError, AttributeError):
        return body.decode("utf-8", errors="replace")[:300]


class GatewaySender:
    """HTTP to the gateway: ``/layout-parsing/stream`` (SSE, page events and the final
    one with timings) or ``/layout-parsing`` (one envelope, no timings).

    aiohttp, as the service's own VLM client: the load generator's CPU per request is
    not the service's overhead, and httpx's is about 1 ms more (BENCHMARKS.md)."""

    def __init__(self, url: str, route: str, timeout: float) -> None:
        self.name = f"gateway {route}"
        self.route = route
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._http: aiohttp.ClientSession | None = None

    @property
    def http(self) -> aiohttp.ClientSession:
        """Made on first use, inside the running loop."""
        if self._http is None:
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=self.timeout)
            )
        return self._http

    async def events(self, body: dict) -> AsyncIterator[dict]:
        try:
            # Encoded with orjson: the client's own JSON work is not the service's overhead
            # (the standard library takes ~1 ms for a page's base64).
            content, headers = json_bytes(body), {"Content-Type": "application/json"}
            if self.route == "unary":
                async with self.http.post(f"{self.url}/layout-parsing", data=content, headers=headers) as response:
                    answer = await response.read()
                if response.status != 200:
                    raise RequestFailed(f"HTTP {response.status}", envelope_message(answer))
                result = json.loads(answer)["result"]
                for index, page in enumerate(result["layoutParsingResults"]):
                    yield {"type": "page", "pageIndex": index, "result": page}
                yield {"type": "final", "dataInfo": result["dataInfo"], "timings": None}
                return
            async with self.http.post(f"{self.url}/layout-parsing/stream", data=content, headers=headers) as response:
                if response.status != 200:
                    raise RequestFailed(f"HTTP {response.status}", envelope_message(await response.read()))
                async for name, event in sse_events(response):
                    if name == "error":
                        raise RequestFailed(f"stream error {event.get('errorCode')}", str(event.get("errorMsg")))
                    yield event
        except (aiohttp.ClientError, asyncio.TimeoutError, SSEError) as exc:
            raise RequestFailed(type(exc).__name__, str(exc) or repr(exc)) from None

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.close()


class TritonSender:
    """gRPC straight to Triton's ``layout-parsing-stream``, with the client the gateway uses."""

    def __init__(self, url: str) -> None:
        from docparse.client import AsyncTritonClient

        self.name = "triton grpc"
        self.connection = AsyncTritonClient(url)

    async def events(self, body: dict) -> AsyncIterator[dict]:
        from docparse.errors import DocParseError

        try:
            async for event in self.connection.events(body, body["logId"]):
                yield event.model_dump()
        except DocParseError as exc:
            raise RequestFailed(f"Triton {exc.status}", exc.message) from None

    async def aclose(self) -> None:
        await self.connection.close()


class VlmSender:
    """Each image document straight to the VLM stand-in, as it is (its own bytes in a
    data URL, the text prompt): what a client without any service in between feeds the
    VLM, the bound the service's utilisation is measured against. A PDF cannot go
    straight to a VLM; use ``pages:FILE.pdf`` for its page images."""

    MEDIA = {b"\x89PNG": "image/png", b"\xff\xd8\xff": "image/jpeg"}

    def __init__(self, url: str, timeout: float) -> None:
        from docparse.recognition.tasks import TaskTable
        from docparse.settings import Settings
        from docparse.types import Task

        settings = Settings.load()
        self.name = "vlm direct"
        self.url = url.rstrip("/") + "/chat/completions"
        self.model, self.max_tokens = settings.vlm.model, settings.vlm.max_tokens
        self.prompt = TaskTable.from_settings(settings.recognition).prompt_for(Task.TEXT)
        self.http = GatewaySender(url, "direct", timeout)  # its session only

    def data_uri(self, encoded: str) -> str:
        head = base64.b64decode(encoded[:8])
        media = next((media for magic, media in self.MEDIA.items() if head.startswith(magic)), None)
        if media is None:
            raise RequestFailed("not an image", "--target vlm sends PNG or JPEG documents (pages:FILE.pdf)")
        return f"data:{media};base64,{encoded}"

    async def events(self, body: dict) -> AsyncIterator[dict]:
        from docparse.recognition.vlm import chat_request

        request = chat_request(self.model, self.data_uri(body["file"]), self.prompt, self.max_tokens, 0.0, None, None)
        try:
            async with self.http.http.post(self.url, data=json_bytes(request), headers={
                    "Content-Type": "application/json", "X-Request-Id": body["logId"]}) as response:
                answer = await response.read()
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise RequestFailed(type(exc).__name__, str(exc) or repr(exc)) from None
        if response.status != 200:
            raise RequestFailed(f"HTTP {response.status}", answer.decode("utf-8", "replace")[:300])
        # One page of one text block: what bench.point counts as a page and a region.
        yield {"type": "page", "pageIndex": 0, "result": {"prunedResult": {"parsing_res_list": [{"block_label": "text"}]}}}
        yield {"type": "final", "dataInfo": None, "timings": None}

    async def aclose(self) -> None:
        await self.http.aclose()


def vlm_region_counter() -> Callable[[dict], int]:
    """Regions of a page result that went to the VLM and came back without error:
    ``parsing_res_list`` entries whose label's task is text, table or formula (the
    service's default label table; figures and dropped labels are not read)."""
    from docparse.recognition.tasks import TaskTable
    from docparse.settings import Settings
    from docparse.types import Task

    table = TaskTable.from_settings(Settings.load().recognition)
    read = {Task.TEXT, Task.TABLE, Task.FORMULA}

    def count(result: dict) -> int:
        items = result.get("prunedResult", {}).get("parsing_res_list", [])
        return sum(1 for item in items if table.task_for(item["block_label"]) in read and not item.get("error"))

    return count


@dataclass
class RequestRecord:
    """One request; times are ``time.perf_counter()`` seconds."""

    log_id: str
    scheduled: float  # when it was due (open loop) or issued (closed loop)
    sent: float
    finished: float = 0.0
    pages: list[tuple[float, int]] = field(default_factory=list)  # (arrival, regions) per page
    timings: dict | None = None  # the final event's
    error: RequestFailed | None = None
    final_at: float = 0.0  # when the final event arrived


async def send(sender: Sender, document: Document, options: dict, scheduled: float,
               count_regions: Callable[[dict], int]) -> RequestRecord:
    log_id = f"bench-{uuid.uuid4().hex[:16]}"
    body = document.body(log_id, options)
    record = RequestRecord(log_id, scheduled, time.perf_counter())
    final_seen = False
    try:
        async for event in sender.events(body):
            if event.get("type") == "page":
                record.pages.append((time.perf_counter(), count_regions(event["result"])))
            elif event.get("type") == "final":
                final_seen = True
                record.final_at = time.perf_counter()
                record.timings = event.get("timings")
        if not final_seen:
            raise RequestFailed("no final event", "the stream ended without its final event")
    except RequestFailed as failure:
        record.error = failure
    except (OSError, ValueError, KeyError) as exc:
        record.error = RequestFailed(type(exc).__name__, str(exc))
    record.finished = time.perf_counter()
    return record
