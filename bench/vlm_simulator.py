"""A stand-in for vLLM serving GLM-OCR: a real HTTP server speaking OpenAI chat-completions.

Why: tests and benchmarks need the VLM's behaviour without a GPU. It validates requests
like vLLM (404 for an unknown model, 400 for a malformed body or image), queues calls
above ``max_concurrency`` like ``--max-num-seqs`` (they wait, they are not refused),
takes ``latency`` seconds per call, and answers deterministically from what it received,
so a test can tell which crop and prompt produced which answer:

    "Text Recognition:"    -> "text {W}x{H} #{h}"
    "Table Recognition:"   -> "<table><tr><td>cell {W}x{H}</td></tr></table>"
    "Formula Recognition:" -> "\\frac{a}{b} #{h}"
    any other prompt       -> "echo: {prompt} {W}x{H}"

with W x H the decoded image size and h the first 8 hex digits of sha256(image bytes).
Failure rules make matching calls answer an error status or stall (to test retries and
timeouts). Every call is recorded; ``/_sim/*`` endpoints read and change all of this.

Run it:  python -m bench.vlm_simulator --port 8118 --latency 0.5 --max-concurrency 64
From Python (tests): ``with SimulatorProcess(latency=0.02) as sim: ... sim.url ...``
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import collections
import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from PIL import Image, UnidentifiedImageError

from gateway.disconnect import ClientGoneError, unless_disconnected
from scripts.processes import free_port, http_ok, launch, log_tail, stop_group

REPO_ROOT = Path(__file__).resolve().parent.parent
PATCH = 28  # pixels per vision-token side, for the rough token counts in ``usage``


# --- behaviour (no web framework below this line until create_app) -------------------------


class ApiError(Exception):
    """An error answered in OpenAI's format: ``{"error": {"message", "type", "code"}}``."""

    TYPES = {400: "BadRequestError", 404: "NotFoundError", 429: "RateLimitError"}

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def body(self) -> dict:
        kind = self.TYPES.get(self.status, "InternalServerError" if self.status >= 500 else "Error")
        return {"error": {"message": self.message, "type": kind, "param": None, "code": self.status}}


@dataclass
class FailureRule:
    """Calls matching ``prompt`` and ``request_id`` (None matches any) answer ``status``,
    or, with ``stall``, wait that many seconds and then answer normally. ``times`` limits
    how many calls the rule hits; after that it stops matching."""

    prompt: str | None = None
    request_id: str | None = None
    status: int = 500
    times: int | None = None
    stall: float | None = None
    message: str | None = None

    def take(self, prompt: str, request_id: str) -> bool:
        """Whether this call is hit, counting it against ``times``."""
        if self.prompt is not None and self.prompt != prompt:
            return False
        if self.request_id is not None and self.request_id != request_id:
            return False
        if self.times is not None:
            if self.times <= 0:
                return False
            self.times -= 1
        return True


@dataclass(frozen=True)
class ChatRequest:
    """What the simulator reads from a chat-completions body."""

    model: str
    prompt: str
    image: bytes
    width: int
    height: int
    max_tokens: int | None
    temperature: float | None


def parse_chat_request(raw: bytes, served_model: str) -> ChatRequest:
    """Validate a body the way vLLM does (as far as this stand-in needs); raises ApiError."""
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise ApiError(400, f"the request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    model = body.get("model", served_model)
    if model != served_model:
        raise ApiError(404, f"The model `{model}` does not exist.")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise ApiError(400, "'messages' must be a non-empty list of message objects")
    content = messages[-1].get("content")
    parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
    if not isinstance(parts, list) or not all(isinstance(p, dict) for p in parts):
        raise ApiError(400, "message 'content' must be a string or a list of content parts")
    texts = [p.get("text") for p in parts if p.get("type") == "text"]
    urls = [(p.get("image_url") or {}).get("url") for p in parts if p.get("type") == "image_url"]
    if not all(isinstance(t, str) for t in texts):
        raise ApiError(400, "a text part has no 'text' string")
    if len(urls) != 1 or not isinstance(urls[0], str):
        raise ApiError(400, f"expected exactly one image_url part with a 'url', got {len(urls)}")
    image, width, height = decode_data_uri(urls[0])
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and (type(max_tokens) is not int or max_tokens < 1):
        raise ApiError(400, f"'max_tokens' must be a positive integer, got {max_tokens!r}")
    temperature = body.get("temperature")
    if temperature is not None and (type(temperature) not in (int, float) or temperature < 0):
        raise ApiError(400, f"'temperature' must be a number >= 0, got {temperature!r}")
    return ChatRequest(model, "\n".join(texts), image, width, height, max_tokens, temperature)


def decode_data_uri(url: str) -> tuple[bytes, int, int]:
    """The image bytes and size of a ``data:image/...;base64,...`` URL; raises ApiError."""
    header, comma, data = url.partition(",")
    if not comma or not header.startswith("data:image/") or not header.endswith(";base64"):
        raise ApiError(400, f"the image must be a base64 data URI, got {url[:40]!r}")
    try:
        image = base64.b64decode(data, validate=True)
        with Image.open(io.BytesIO(image)) as picture:
            picture.load()
            width, height = picture.size
    except (binascii.Error, UnidentifiedImageError, OSError) as exc:
        raise ApiError(400, f"the image could not be decoded: {exc}") from None
    return image, width, height


def answer_for(prompt: str, image: bytes, width: int, height: int) -> str:
    """The deterministic answer (see the module docstring)."""
    digest = hashlib.sha256(image).hexdigest()[:8]
    if prompt == "Text Recognition:":
        return f"text {width}x{height} #{digest}"
    if prompt == "Table Recognition:":
        return f"<table><tr><td>cell {width}x{height}</td></tr></table>"
    if prompt == "Formula Recognition:":
        return f"\\frac{{a}}{{b}} #{digest}"
    return f"echo: {prompt} {width}x{height}"


class Slots:
    """vLLM's ``--max-num-seqs``: at most ``limit`` calls run, the others wait. The
    limit can change while calls wait."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.running = 0
        self.waiting = 0
        self.peak = 0
        self._changed = asyncio.Condition()

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        async with self._changed:
            self.waiting += 1
            try:
                await self._changed.wait_for(lambda: self.running < self.limit)
            finally:
                self.waiting -= 1
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            yield
        finally:
            async with self._changed:
                self.running -= 1
                self._changed.notify_all()

    async def set_limit(self, limit: int) -> None:
        async with self._changed:
            self.limit = limit
            self._changed.notify_all()


@dataclass
class Counters:
    """Totals since start or the last reset (``/_sim/stats`` and ``/metrics``)."""

    total_calls: int = 0
    succeeded: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    generation_tokens: int = 0


class Simulator:
    """The simulated server's state and behaviour."""

    def __init__(
        self,
        model: str = "glm-ocr",
        latency: float = 0.0,
        max_concurrency: int = 64,
        latency_per_pixel: float = 0.0,
        max_records: int = 100_000,
    ) -> None:
        self.model = model
        self.latency = latency
        self.latency_per_pixel = latency_per_pixel
        self.failures: list[FailureRule] = []
        self.slots = Slots(max_concurrency)
        self.calls: collections.deque[dict] = collections.deque(maxlen=max_records)
        self.counters = Counters()

    def config(self) -> dict:
        return {
            "model": self.model,
            "latency": self.latency,
            "latency_per_pixel": self.latency_per_pixel,
            "max_concurrency": self.slots.limit,
            "failures": [asdict(rule) for rule in self.failures],
        }

    async def configure(self, changes: Any) -> None:
        """Apply any of latency, latency_per_pixel, max_concurrency, failures; raises
        ApiError (400) naming the bad field, changing nothing."""
        if not isinstance(changes, dict):
            raise ApiError(400, "the configuration must be a JSON object")
        known = {"latency", "latency_per_pixel", "max_concurrency", "failures"}
        if unknown := sorted(set(changes) - known):
            raise ApiError(400, f"unknown configuration field(s) {unknown}; known: {sorted(known)}")
        for name in ("latency", "latency_per_pixel"):
            value = changes.get(name, 0)
            if type(value) not in (int, float) or value < 0:
                raise ApiError(400, f"'{name}' must be a number >= 0, got {value!r}")
        limit = changes.get("max_concurrency", self.slots.limit)
        if type(limit) is not int or limit < 1:
            raise ApiError(400, f"'max_concurrency' must be an integer >= 1, got {limit!r}")
        failures = self.failures
        if "failures" in changes:
            failures = parse_failures(changes["failures"])
        self.latency = float(changes.get("latency", self.latency))
        self.latency_per_pixel = float(changes.get("latency_per_pixel", self.latency_per_pixel))
        self.failures = failures
        await self.slots.set_limit(limit)

    def reset(self) -> None:
        """Forget the calls and the totals (behaviour stays as configured)."""
        self.calls.clear()
        self.counters = Counters()
        self.slots.peak = self.slots.running

    def stats(self) -> dict:
        return {
            **asdict(self.counters),
            "peak_in_flight": self.slots.peak,
            "running": self.slots.running,
            "queued": self.slots.waiting,
            "max_concurrency": self.slots.limit,
        }

    async def complete(self, raw: bytes, request_id: str) -> tuple[int, dict]:
        """Serve one chat-completions call: ``(status, JSON body)``."""
        record = {
            "request_id": request_id, "prompt": None, "width": None, "height": None,
            "model": None, "max_tokens": None, "temperature": None,
            "status": None, "received": time.time(), "started": None, "finished": None,
        }
        self.calls.append(record)
        self.counters.total_calls += 1
        try:
            request = parse_chat_request(raw, self.model)
        except ApiError as error:
            record.update(status=error.status, started=time.time(), finished=time.time())
            self.counters.failed += 1
            return error.status, error.body()
        record.update(
            prompt=request.prompt, width=request.width, height=request.height, model=request.model,
            max_tokens=request.max_tokens, temperature=request.temperature,
        )
        rule = next((r for r in self.failures if r.take(request.prompt, request_id)), None)
        try:
            return await self._serve(request, rule, record)
        except asyncio.CancelledError:  # the client went away: vLLM aborts the request
            record.update(status=ABORTED, finished=time.time())
            self.counters.failed += 1
            raise

    async def _serve(self, request: ChatRequest, rule: "FailureRule | None", record: dict) -> tuple[int, dict]:
        async with self.slots.hold():
            record["started"] = time.time()
            try:
                if rule is not None and rule.stall is None:
                    error = ApiError(rule.status, rule.message or f"injected failure ({rule.status})")
                    status, body = error.status, error.body()
                else:
                    if rule is not None:
                        await asyncio.sleep(rule.stall)
                    status, body = 200, await self._answer(request)
            finally:
                record["finished"] = time.time()
        record["status"] = status
        if status == 200:
            self.counters.succeeded += 1
        else:
            self.counters.failed += 1
        return status, body

    async def _answer(self, request: ChatRequest) -> dict:
        pixels = request.width * request.height
        await asyncio.sleep(self.latency + self.latency_per_pixel * pixels)
        content = answer_for(request.prompt, request.image, request.width, request.height)
        prompt_tokens = pixels // (PATCH * PATCH) + len(request.prompt.split()) + 8
        completion_tokens = max(1, len(content) // 4)
        self.counters.prompt_tokens += prompt_tokens
        self.counters.generation_tokens += completion_tokens
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "logprobs": None,
                "finish_reason": "stop",
            }],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    def metrics(self) -> str:
        """Prometheus text with vLLM's metric names."""
        label = f'model_name="{self.model}"'
        counters = self.counters
        lines = []
        for name, kind, help_text, samples in (
            ("vllm:num_requests_running", "gauge", "Requests in model execution batches.",
             [(label, self.slots.running)]),
            ("vllm:num_requests_waiting", "gauge", "Requests waiting to be processed.",
             [(label, self.slots.waiting)]),
            ("vllm:request_success_total", "counter", "Successfully processed requests.",
             [(f'finished_reason="stop",{label}', counters.succeeded)]),
            ("vllm:prompt_tokens_total", "counter", "Prefill tokens processed.",
             [(label, counters.prompt_tokens)]),
            ("vllm:generation_tokens_total", "counter", "Generation tokens processed.",
             [(label, counters.generation_tokens)]),
        ):
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
            lines += [f"{name}{{{labels}}} {value}" for labels, value in samples]
        return "\n".join(lines) + "\n"


def parse_failures(value: Any) -> list[FailureRule]:
    """Failure rules from JSON; raises ApiError (400) naming the bad rule."""
    if not isinstance(value, list):
        raise ApiError(400, "'failures' must be a list of rules")
    names = {f.name for f in fields(FailureRule)}
    rules = []
    for index, item in enumerate(value):
        if not isinstance(item, dict) or set(item) - names:
            raise ApiError(400, f"failure rule {index} must be an object with fields from {sorted(names)}")
        rule = FailureRule(**item)
        if type(rule.status) is not int or not 100 <= rule.status <= 599:
            raise ApiError(400, f"failure rule {index}: 'status' must be an HTTP status, got {rule.status!r}")
        if rule.times is not None and type(rule.times) is not int:
            raise ApiError(400, f"failure rule {index}: 'times' must be an integer, got {rule.times!r}")
        if rule.stall is not None and (type(rule.stall) not in (int, float) or rule.stall < 0):
            raise ApiError(400, f"failure rule {index}: 'stall' must be seconds >= 0, got {rule.stall!r}")
        rules.append(rule)
    return rules


# --- HTTP ----------------------------------------------------------------------------------


ABORTED = 499  # the record's status of a call whose client went away


def create_app(simulator: Simulator) -> FastAPI:
    """The FastAPI app serving ``simulator``: vLLM's routes plus ``/_sim/*`` controls."""
    app = FastAPI(title="VLM simulator (vLLM + GLM-OCR stand-in)")

    def error_response(error: ApiError) -> JSONResponse:
        return JSONResponse(error.body(), status_code=error.status)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> JSONResponse:
        call = simulator.complete(await request.body(), request.headers.get("x-request-id", ""))
        try:  # like vLLM: a request whose client left is aborted
            status, body = await unless_disconnected(request, call)
        except ClientGoneError:
            return JSONResponse({"error": {"message": "client disconnected"}}, status_code=ABORTED)
        return JSONResponse(body, status_code=status)

    @app.get("/v1/models")
    async def models() -> dict:
        return {
            "object": "list",
            "data": [{
                "id": simulator.model, "object": "model", "created": int(time.time()),
                "owned_by": "vllm", "root": simulator.model, "parent": None,
            }],
        }

    @app.get("/health")
    async def health() -> PlainTextResponse:
        return PlainTextResponse("")

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(simulator.metrics(), media_type="text/plain; version=0.0.4")

    @app.get("/_sim/calls")
    async def calls() -> list[dict]:
        return list(simulator.calls)

    @app.get("/_sim/stats")
    async def stats() -> dict:
        return simulator.stats()

    @app.post("/_sim/reset")
    async def reset() -> dict:
        simulator.reset()
        return simulator.stats()

    @app.post("/_sim/config")
    async def configure(request: Request) -> JSONResponse:
        try:
            await simulator.configure(json.loads(await request.body() or b"{}"))
        except ValueError as exc:
            return error_response(ApiError(400, f"the configuration is not valid JSON: {exc}"))
        except ApiError as error:
            return error_response(error)
        return JSONResponse(simulator.config())

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="OpenAI-compatible stand-in for vLLM serving GLM-OCR.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8118)
    parser.add_argument("--model", default="glm-ocr", help="served model name")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per call")
    parser.add_argument("--latency-per-pixel", type=float, default=0.0, help="extra seconds per image pixel")
    parser.add_argument("--max-concurrency", type=int, default=64, help="calls run at once (--max-num-seqs)")
    parser.add_argument("--max-records", type=int, default=100_000, help="calls kept for /_sim/calls")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    if args.max_concurrency < 1:
        parser.error("--max-concurrency must be at least 1")

    import uvicorn

    simulator = Simulator(args.model, args.latency, args.max_concurrency, args.latency_per_pixel, args.max_records)
    uvicorn.run(
        create_app(simulator),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=False,
        timeout_graceful_shutdown=2,  # stalled calls must not hold up a stop
    )
    return 0


# --- the simulator as a child process (tests, benchmarks, make run) -------------------------


@dataclass
class SimulatorProcess:
    """Runs ``python -m bench.vlm_simulator`` and talks to its control endpoints with the
    standard library only (urllib), so that using it needs no HTTP client package."""

    latency: float = 0.0
    max_concurrency: int = 64
    model: str = "glm-ocr"
    host: str = "127.0.0.1"
    port: int = 0
    latency_per_pixel: float = 0.0
    ready_timeout: float = 30.0
    log_path: Path | None = None
    process: subprocess.Popen | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.port = self.port or free_port()

    @property
    def root(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"

    @property
    def url(self) -> str:
        """The OpenAI base URL: clients append ``/chat/completions``."""
        return f"{self.root}/v1"

    def start(self) -> "SimulatorProcess":
        if self.log_path is None:
            handle, name = tempfile.mkstemp(prefix="vlm-simulator-", suffix=".log")
            os.close(handle)
            self.log_path = Path(name)
        command = [
            sys.executable, "-m", "bench.vlm_simulator",
            "--host", self.host, "--port", str(self.port), "--model", self.model,
            "--latency", str(self.latency), "--latency-per-pixel", str(self.latency_per_pixel),
            "--max-concurrency", str(self.max_concurrency),
        ]
        self.process = launch(
            "the VLM simulator",
            command,
            log_path=self.log_path,
            ready=lambda: http_ok(f"{self.root}/health"),
            ready_timeout=self.ready_timeout,
            cwd=REPO_ROOT,
        )
        return self

    def _control(self, path: str, payload: dict | None = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(
            f"{self.root}{path}", data=data, method="GET" if data is None else "POST",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.load(response)
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"the VLM simulator refused {path}: {exc.code} {exc.read()[:300]!r}") from None

    def calls(self) -> list[dict]:
        return self._control("/_sim/calls")

    def stats(self) -> dict:
        return self._control("/_sim/stats")

    def reset(self) -> dict:
        return self._control("/_sim/reset", {})

    def configure(self, **changes: Any) -> dict:
        """Any of latency, latency_per_pixel, max_concurrency, failures (list of dicts)."""
        return self._control("/_sim/config", changes)

    def log_tail(self, lines: int = 60) -> str:
        return log_tail(self.log_path, lines)

    def stop(self, timeout: float = 10.0) -> None:
        stop_group(self.process, timeout)

    def __enter__(self) -> "SimulatorProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    sys.exit(main())
