"""Load generator: real documents through the whole service, started for the run.

    python -m bench.load                                   # closed loop, c = 1,4,16,64, 10 s each
    python -m bench.load --concurrency 8 --document pdf:3 --target triton
    python -m bench.load --rate 1,2,4 --arrival poisson --document image --document my.pdf

For each point: warm up (``--warmup`` seconds, and in a closed loop until as many
requests as clients have finished, so the pipeline is full), then measure a window of
``--duration`` seconds (or until ``--requests`` requests have finished). Pages and regions
are counted as they arrive inside the window; CPU, the VLM stand-in's counters and
Triton's metrics are read at the window's edges. Requests still running when the window
closes finish uncounted (cancelling them would exercise the cancellation path, not the
steady state) and the point ends when the service is idle again.
Then the overhead of gateway + Triton + orchestration at concurrency 1 (``--overhead-requests``).
Results go to ``--out`` (default bench/results/<timestamp>/): results.json, results.md,
results.png, and the servers' logs in stack/.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import os
import platform
import random
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import AsyncIterator, Awaitable, Callable, Iterator, Protocol

import aiohttp
import httpx
from httpx_sse import EventSource, SSEError

from bench.report import distribution, markdown, write_reports
from bench.stages import Mark, breakdown, read_marks, vlm_marks
from docparse.protocol import json_bytes
from bench.stack import (
    BenchStack,
    StackConfig,
    fetch_text,
    prometheus_samples,
    read_cpu_seconds,
)
from scripts.processes import LaunchError

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RESULTS = REPO_ROOT / "bench" / "results"
SAMPLE_EVERY = 0.2  # seconds between samples of the VLM's running requests
IDLE_TIMEOUT = 120.0  # seconds the service may take to become idle after the last response
VERSIONED = ("docparse-hps", "nvidia-pytriton", "tritonclient", "paddlepaddle", "paddlex", "fastapi",
             "gunicorn", "uvicorn", "httpx", "aiohttp", "grpcio", "numpy", "pillow", "pypdfium2", "matplotlib")


class UsageError(Exception):
    """Bad command-line input: reported as a message, never as a traceback."""


# --- documents -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Document:
    name: str
    encoded: str  # base64 of the file
    file_type: int | None  # 0 PDF, 1 image, None: the service detects it

    def body(self, log_id: str, options: dict) -> dict:
        return {"file": self.encoded, "fileType": self.file_type, "logId": log_id, **options}


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"}


def load_document(spec: str) -> Document:
    """``pdf:N`` (the generated N-page test PDF), ``image`` (its first page as a PNG), or
    the path of a file."""
    from testkit import documents

    if spec.startswith("pdf:"):
        pages = spec[4:]
        if not pages.isdigit() or int(pages) < 1:
            raise UsageError(f"--document {spec!r}: pdf:N needs a page count N >= 1")
        return Document(spec, _b64(documents.sample_pdf(int(pages))), 0)
    if spec == "image":
        return Document(spec, _b64(documents.sample_image()), 1)
    path = Path(spec)
    if not path.is_file():
        raise UsageError(f"--document {spec!r}: no such file (or use pdf:N or image)")
    suffix = path.suffix.lower()
    file_type = 0 if suffix == ".pdf" else 1 if suffix in IMAGE_SUFFIXES else None
    return Document(path.name, _b64(path.read_bytes()), file_type)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# --- sending one request -------------------------------------------------------------------


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


# --- load shapes ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ClosedLoop:
    """``concurrency`` clients, each sending its next request when the last one ends."""

    concurrency: int

    def describe(self) -> dict:
        return {"mode": "closed", "concurrency": self.concurrency}


@dataclass(frozen=True)
class OpenLoop:
    """Requests arriving at ``rate`` per second whatever the service does; at most
    ``max_in_flight`` at once, the others wait (and that wait is recorded)."""

    rate: float
    arrival: str  # "poisson" or "uniform"
    max_in_flight: int
    seed: int = 1

    def describe(self) -> dict:
        return {"mode": "open", "rate": self.rate, "arrival": self.arrival, "max_in_flight": self.max_in_flight}


def arrival_offsets(rate: float, arrival: str, rng: random.Random) -> Iterator[float]:
    """Seconds after the start at which requests arrive, forever: evenly spaced
    (``uniform``) or with exponential gaps of mean 1/rate (``poisson``)."""
    if rate <= 0:
        raise ValueError(f"rate must be > 0, got {rate}")
    if arrival == "uniform":
        yield from (i / rate for i in itertools.count())
    elif arrival == "poisson":
        offset = 0.0
        while True:
            yield offset
            offset += rng.expovariate(rate)
    else:
        raise ValueError(f"arrival must be poisson or uniform, got {arrival!r}")


Issue = Callable[[float], Awaitable[RequestRecord]]


async def generate(load: ClosedLoop | OpenLoop, issue: Issue, on_done: Callable[[RequestRecord], None],
                   stop: asyncio.Event) -> None:
    """Send requests in ``load``'s shape until ``stop`` is set, then wait for those in
    flight. Cancelling it cancels them."""
    if isinstance(load, ClosedLoop):
        async def client() -> None:
            while not stop.is_set():
                on_done(await issue(time.perf_counter()))

        await asyncio.gather(*(client() for _ in range(load.concurrency)))
        return
    slots = asyncio.Semaphore(load.max_in_flight)
    running: set[asyncio.Task] = set()

    async def one(scheduled: float) -> None:
        try:
            on_done(await issue(scheduled))
        finally:
            slots.release()

    start = time.perf_counter()
    try:
        for offset in arrival_offsets(load.rate, load.arrival, random.Random(load.seed)):
            try:  # sleep until the arrival, unless stopped first
                await asyncio.wait_for(stop.wait(), max(0.0, start + offset - time.perf_counter()))
            except TimeoutError:
                pass
            if stop.is_set():
                break
            await slots.acquire()  # a full house delays the send; the record keeps the delay
            task = asyncio.create_task(one(start + offset))
            running.add(task)
            task.add_done_callback(running.discard)
        await asyncio.gather(*running)
    finally:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)


# --- observing the stack -------------------------------------------------------------------


@dataclass
class Snapshot:
    clock: float
    cpu: dict[tuple[str, int], float]  # (role, pid) -> CPU seconds so far
    vlm_stats: dict
    vlm_metrics: dict
    triton_metrics: dict


def take_snapshot(stack: BenchStack, processes: list[tuple[str, int]]) -> Snapshot:
    cpu = {}
    for role, pid in processes:
        seconds = read_cpu_seconds(pid)
        if seconds is not None:
            cpu[(role, pid)] = seconds
    return Snapshot(
        clock=time.perf_counter(),
        cpu=cpu,
        vlm_stats=stack.simulator.stats(),
        vlm_metrics=prometheus_samples(fetch_text(f"{stack.simulator.root}/metrics")),
        triton_metrics=prometheus_samples(fetch_text(stack.triton.metrics_url)),
    )


def metric_total(samples: dict, name: str, **labels: str) -> float | None:
    """The sum of the samples called ``name`` whose labels include ``labels``. A counter
    written without ``_total`` (Triton's) is read back with it by prometheus_client."""
    wanted = set(labels.items())
    names = {name, f"{name}_total"}
    values = [value for (sample, tags), value in samples.items() if sample in names and wanted <= tags]
    return sum(values) if values else None


class VlmSampler:
    """Samples the VLM's ``vllm:num_requests_running`` and ``…_waiting`` every 0.2 s:
    the utilisation when the stand-in keeps no busy-slot counter."""

    def __init__(self, metrics_url: str) -> None:
        self.metrics_url = metrics_url
        self.samples: list[tuple[float, float]] = []  # (running, waiting)
        self._task: asyncio.Task | None = None

    async def _run(self) -> None:
        async with httpx.AsyncClient(timeout=5) as http:
            while True:
                try:
                    samples = prometheus_samples((await http.get(self.metrics_url)).text)
                    self.samples.append((metric_total(samples, "vllm:num_requests_running") or 0.0,
                                         metric_total(samples, "vllm:num_requests_waiting") or 0.0))
                except (httpx.HTTPError, ValueError):
                    pass  # a missed sample; the others still count
                await asyncio.sleep(SAMPLE_EVERY)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> list[tuple[float, float]]:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        return self.samples


def busy_slot_counters(snapshot: Snapshot) -> tuple[float | None, float | None]:
    """The stand-in's ``sim_busy_slot_seconds_total`` and ``sim_max_num_seqs``, from
    /metrics or /_sim/stats, when it has them."""
    def read(name: str) -> float | None:
        value = metric_total(snapshot.vlm_metrics, name)
        return value if value is not None else snapshot.vlm_stats.get(name)

    return read("sim_busy_slot_seconds_total"), read("sim_max_num_seqs")


def vlm_utilisation(before: Snapshot, after: Snapshot, samples: list[tuple[float, float]]) -> dict:
    """Busy decode slots over capacity during the window."""
    elapsed = after.clock - before.clock
    busy_before, capacity = busy_slot_counters(before)
    busy_after, _ = busy_slot_counters(after)
    running = [r for r, _ in samples]
    waiting = [w for _, w in samples]
    mean_running = sum(running) / len(running) if running else None
    result = {
        "samples": len(samples),
        "mean_running": mean_running,
        "mean_waiting": sum(waiting) / len(waiting) if waiting else None,
    }
    if busy_before is not None and busy_after is not None and capacity and elapsed > 0:
        return {**result, "value": (busy_after - busy_before) / (elapsed * capacity), "capacity": capacity,
                "method": "sim_busy_slot_seconds_total delta / (window × sim_max_num_seqs)"}
    capacity = after.vlm_stats.get("max_concurrency")
    value = mean_running / capacity if mean_running is not None and capacity else None
    return {**result, "value": value, "capacity": capacity,
            "method": f"mean of vllm:num_requests_running sampled every {SAMPLE_EVERY:g} s / max_concurrency"}


def cpu_summary(before: Snapshot, after: Snapshot, pages: int) -> dict:
    """CPU seconds used in the window per process, per role and per page."""
    processes = [
        {"role": role, "pid": pid, "cpu_s": after.cpu[(role, pid)] - start}
        for (role, pid), start in before.cpu.items() if (role, pid) in after.cpu
    ]
    by_role: dict[str, dict] = {}
    for process in processes:
        entry = by_role.setdefault(process["role"], {"cpu_s": 0.0, "processes": 0})
        entry["cpu_s"] += process["cpu_s"]
        entry["processes"] += 1
    for entry in by_role.values():
        entry["per_page_s"] = entry["cpu_s"] / pages if pages else None
    total = sum(p["cpu_s"] for p in processes)
    return {"processes": processes, "by_role": by_role, "total_s": total,
            "total_per_page_s": total / pages if pages else None,
            "note": "loadgen is this process (clients, sampling, reading /proc)"}


def triton_compute(before: Snapshot, after: Snapshot, pages: int) -> dict:
    """Per model: Triton's compute and queue time (wall) and executions in the window."""
    result = {}
    models = {dict(tags).get("model") for (name, tags) in after.triton_metrics if name.startswith("nv_inference_exec_count")}
    for model in sorted(m for m in models if m):
        def delta(name: str) -> float:
            return (metric_total(after.triton_metrics, name, model=model) or 0.0) - (
                metric_total(before.triton_metrics, name, model=model) or 0.0)

        compute_us = delta("nv_inference_compute_infer_duration_us")
        result[model] = {
            "requests": delta("nv_inference_request_success"),
            "executions": delta("nv_inference_exec_count"),
            "compute_infer_s": compute_us / 1e6,
            "queue_s": delta("nv_inference_queue_duration_us") / 1e6,
            "compute_ms_per_page": compute_us / 1e3 / pages if pages else None,
        }
    return result


def stage_cpu(cpu: dict, timings: list[dict], pages: int) -> dict:
    """CPU seconds per page of each stage: render and layout are their stub processes'
    /proc CPU; crop and assembly the orchestrator's thread-CPU timings; what else the
    orchestrator spent (BLS calls, HTTP to the VLM, JSON) is its stub's CPU minus those."""
    def role_cpu(role: str) -> float | None:
        entry = cpu["by_role"].get(role)
        return entry["cpu_s"] if entry else None

    def per_page(seconds: float | None) -> float | None:
        return seconds / pages if seconds is not None and pages else None

    crop = sum(t.get("crop_cpu", 0.0) for t in timings)
    assembly = sum(t.get("assemble_cpu", 0.0) for t in timings)
    orchestrator = role_cpu("stub:layout-parsing-stream")
    return {
        "render": {"cpu_per_page_s": per_page(role_cpu("stub:pdf_render")),
                   "source": "/proc CPU of the pdf_render stub"},
        "layout": {"cpu_per_page_s": per_page(role_cpu("stub:layout_detection")),
                   "source": "/proc CPU of the layout_detection stub"},
        "crop": {"cpu_per_page_s": per_page(crop) if timings else None,
                 "source": "timings.crop_cpu (thread CPU in the orchestrator)"},
        "assembly": {"cpu_per_page_s": per_page(assembly) if timings else None,
                     "source": "timings.assemble_cpu (thread CPU in the orchestrator)"},
        "orchestration_other": {
            "cpu_per_page_s": per_page(orchestrator - crop - assembly) if orchestrator is not None and timings else None,
            "source": "layout-parsing-stream stub CPU minus crop and assembly",
        },
    }


async def wait_until_idle(stack: BenchStack, timeout: float = IDLE_TIMEOUT) -> None:
    """Wait (bounded) until nothing is left to do: no VLM call running or queued and no
    request pending in any Triton model, twice in a row."""
    deadline = time.monotonic() + timeout
    quiet = 0
    while time.monotonic() < deadline:
        stats = await asyncio.to_thread(stack.simulator.stats)
        metrics = prometheus_samples(await asyncio.to_thread(fetch_text, stack.triton.metrics_url))
        pending = metric_total(metrics, "nv_inference_pending_request_count") or 0.0
        quiet = quiet + 1 if stats["running"] == 0 and stats["queued"] == 0 and pending == 0 else 0
        if quiet >= 2:
            return
        await asyncio.sleep(SAMPLE_EVERY)
    raise RuntimeError(f"the service was still busy {timeout:.0f} s after the window closed")


# --- one point -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    duration: float | None  # seconds
    requests: int | None  # or: until this many requests have finished

    def describe(self) -> str:
        return f"{self.duration:g} s" if self.duration is not None else f"{self.requests} requests"


@dataclass
class Run:
    """Everything a point needs."""

    stack: BenchStack
    sender: Sender
    documents: list[Document]
    options: dict
    window: Window
    warmup: float
    count_regions: Callable[[dict], int]

    def issue(self) -> Issue:
        documents = itertools.cycle(self.documents)
        return lambda scheduled: send(self.sender, next(documents), self.options, scheduled, self.count_regions)


async def measure_point(run: Run, load: ClosedLoop | OpenLoop) -> dict:
    stack = run.stack
    finished: list[RequestRecord] = []  # inside the window
    warm_clients = asyncio.Event()
    window: dict[str, float] = {}
    enough = asyncio.Event()
    warm_count = 0

    def on_done(record: RequestRecord) -> None:
        nonlocal warm_count
        if "start" not in window:
            warm_count += 1
            if isinstance(load, OpenLoop) or warm_count >= load.concurrency:
                warm_clients.set()
        elif "end" not in window:
            finished.append(record)
            if run.window.requests is not None and len(finished) >= run.window.requests:
                enough.set()

    processes = [*stack.processes(), ("loadgen", os.getpid())]
    stop = asyncio.Event()
    generator = asyncio.create_task(generate(load, run.issue(), on_done, stop))
    try:
        await asyncio.sleep(run.warmup)
        if isinstance(load, ClosedLoop):
            await _unless_failed(warm_clients.wait(), generator)
        before = await asyncio.to_thread(take_snapshot, stack, processes)
        window["start"] = before.clock
        sampler = VlmSampler(f"{stack.simulator.root}/metrics")
        sampler.start()
        if run.window.requests is not None:
            await _unless_failed(enough.wait(), generator)
        else:
            await _unless_failed(asyncio.sleep(run.window.duration), generator)
        after = await asyncio.to_thread(take_snapshot, stack, processes)
        window["end"] = after.clock
        samples = await sampler.stop()
        stop.set()
        await generator  # the requests still in flight finish, uncounted
    finally:
        generator.cancel()  # only does something when the measurement failed
        await asyncio.gather(generator, return_exceptions=True)
    await wait_until_idle(stack)
    return summarize_point(load, finished, window["start"], window["end"], before, after, samples)


async def _unless_failed(waiting: Awaitable, generator: asyncio.Task) -> None:
    """Wait for ``waiting``, unless the load generator dies first (then raise its error)."""
    waiter = asyncio.ensure_future(waiting)
    await asyncio.wait({waiter, generator}, return_when=asyncio.FIRST_COMPLETED)
    if not waiter.done():
        waiter.cancel()
        generator.result()  # raises what stopped it
        raise RuntimeError("the load generator stopped early")


def summarize_point(load: ClosedLoop | OpenLoop, finished: list[RequestRecord], start: float, end: float,
                    before: Snapshot, after: Snapshot, samples: list[tuple[float, float]]) -> dict:
    """The numbers of one point. Pages and regions are those that arrived in the window
    (from requests that finished in it); latencies are those of the requests that
    finished in it."""
    elapsed = end - start
    ok = [r for r in finished if r.error is None]
    pages = [(at, regions) for r in ok for at, regions in r.pages if start <= at <= end]
    page_count = len(pages)
    region_count = sum(regions for _, regions in pages)
    errors: dict[str, dict] = {}
    for record in finished:
        if record.error is not None:
            entry = errors.setdefault(record.error.kind, {"count": 0, "example": record.error.message[:300]})
            entry["count"] += 1
    timings = [r.timings for r in ok if r.timings]
    cpu = cpu_summary(before, after, page_count)
    succeeded = after.vlm_stats["succeeded"] - before.vlm_stats["succeeded"]
    queue_waits = [r.sent - r.scheduled for r in finished]
    point = {
        "load": load.describe(),
        "window_s": elapsed,
        "requests": {"ok": len(ok), "failed": len(finished) - len(ok)},
        "pages": page_count,
        "regions": {"from_results": region_count, "simulator_succeeded_calls": succeeded,
                    "source": "the page results (parsing_res_list entries read by the VLM, without error)"},
        "pages_per_s": page_count / elapsed,
        "regions_per_s": region_count / elapsed,
        "latency_s": distribution([r.finished - r.sent for r in ok]),
        "first_page_s": distribution([r.pages[0][0] - r.sent for r in ok if r.pages]),
        "errors": errors,
        "vlm_utilisation": vlm_utilisation(before, after, samples),
        "cpu": cpu,
        "stages": stage_cpu(cpu, timings, page_count),
        "stage_wall_per_page_s": {
            name: sum(t.get(name, 0.0) for t in timings) / sum(len(r.pages) for r in ok if r.timings)
            for name in ("render", "layout", "recognition", "assemble")
        } if timings else {},
        "triton_compute": triton_compute(before, after, page_count),
        "raw": {
            "columns": ["sent_s", "finished_s", "pages", "regions", "first_page_s", "error", "timings"],
            "requests": [
                [round(r.sent - start, 6), round(r.finished - start, 6), len(r.pages),
                 sum(n for _, n in r.pages), round(r.pages[0][0] - r.sent, 6) if r.pages else None,
                 r.error.kind if r.error else None, r.timings]
                for r in finished
            ],
        },
    }
    if isinstance(load, OpenLoop):
        point["queue_wait_s"] = distribution(queue_waits)
        point["queued_requests"] = sum(1 for wait in queue_waits if wait > 0.001)
        point["latency_from_arrival_s"] = distribution([r.finished - r.scheduled for r in ok])
    return point


# --- the overhead measurement --------------------------------------------------------------


def union_seconds(intervals: list[tuple[float, float]]) -> float:
    """Length of the union of ``[start, end]`` intervals (overlapping VLM calls count once)."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


async def measure_overhead(run: Run, sender: Sender, target: str, document: Document,
                           layout: bool, requests: int) -> dict:
    """At concurrency 1: end-to-end latency minus render, layout (the final event's
    timings) and VLM time (the stand-in's own records of the request's calls)."""
    options = {"useLayoutDetection": layout}
    await send(sender, document, options, time.perf_counter(), run.count_regions)  # warm
    await asyncio.to_thread(run.stack.simulator.reset)
    records = [await send(sender, document, options, time.perf_counter(), run.count_regions)
               for _ in range(requests)]
    simulator_calls = await asyncio.to_thread(run.stack.simulator.calls)
    calls: dict[str, list[tuple[float, float]]] = {}
    for call in simulator_calls:
        if call.get("finished") is not None:
            calls.setdefault(call["request_id"], []).append((call["received"], call["finished"]))
    ok = [r for r in records if r.error is None and r.timings]
    rows = [{
        "end_to_end_s": r.finished - r.sent,
        "render_s": r.timings["render"],
        "layout_s": r.timings["layout"],
        "vlm_s": union_seconds(calls.get(r.log_id, [])),
        "vlm_calls": len(calls.get(r.log_id, [])),
        "crop_cpu_s": r.timings.get("crop_cpu", 0.0),  # part of the overhead: the orchestrator's work
    } for r in ok]
    for row in rows:
        row["overhead_s"] = row["end_to_end_s"] - row["render_s"] - row["layout_s"] - row["vlm_s"]
    summary = {
        "target": target,
        "document": f"{document.name}, layout {'on' if layout else 'off'}",
        "requests": len(ok),
        "failed": len(records) - len(ok),
        "vlm_calls_per_request": (sum(r["vlm_calls"] for r in rows) / len(rows)) if rows else None,
        "raw": rows,
    }
    for key in ("end_to_end_s", "render_s", "layout_s", "vlm_s", "overhead_s", "crop_cpu_s"):
        summary[key] = distribution([row[key] for row in rows])
    if run.stack.trace_file is not None:
        marks = read_marks(run.stack.trace_file) + vlm_marks(simulator_calls)
        marks += [mark for record in ok for mark in client_marks(record)]
        summary["stages"] = breakdown(marks, [r.log_id for r in ok])
    return summary


# perf_counter() + this = unix time, the clock of the service's marks (to a few µs).
PERF_TO_UNIX = time.time() - time.perf_counter()


def client_marks(record: RequestRecord) -> list[Mark]:
    """The client's side of a request as stage marks (bench.stages)."""
    marks = [Mark(record.sent + PERF_TO_UNIX, record.log_id, "client.sent")]
    marks += [Mark(at + PERF_TO_UNIX, record.log_id, "client.received.page") for at, _ in record.pages]
    marks.append(Mark(record.final_at + PERF_TO_UNIX, record.log_id, "client.received.final"))
    marks.append(Mark(record.finished + PERF_TO_UNIX, record.log_id, "client.done"))
    return marks


# --- the run -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    target: str
    route: str
    documents: list[Document]
    layout: bool
    loads: list[ClosedLoop | OpenLoop]
    window: Window
    warmup: float
    timeout: float
    overhead_requests: int
    overhead_document: Document
    config: StackConfig
    out: Path


async def benchmark(stack: BenchStack, options: Options) -> tuple[list[dict], list[dict]]:
    sweep_sender: Sender
    if options.target == "triton":
        sweep_sender = TritonSender(stack.triton.grpc_url)
    else:
        sweep_sender = GatewaySender(stack.gateway.url, options.route, options.timeout)
    count_regions = vlm_region_counter()
    request_options = {} if options.layout else {"useLayoutDetection": False}
    run = Run(stack, sweep_sender, options.documents, request_options, options.window, options.warmup, count_regions)
    points, overhead = [], []
    try:
        for load in options.loads:
            label = load.describe()
            print(f"point {label} …", file=sys.stderr, flush=True)
            point = await measure_point(run, load)
            print(f"  {point['pages_per_s']:.2f} pages/s, {point['regions_per_s']:.1f} regions/s, "
                  f"p50 {point['latency_s']['p50'] or float('nan'):.3f} s, "
                  f"{point['requests']['failed']} failed", file=sys.stderr, flush=True)
            points.append(point)
    finally:
        await sweep_sender.aclose()
    if options.overhead_requests > 0:
        image = options.overhead_document
        senders: list[tuple[str, Sender]] = [
            ("gateway", GatewaySender(stack.gateway.url, "stream", options.timeout)),
            ("triton", TritonSender(stack.triton.grpc_url)),
        ]
        try:
            for layout in (False, True):
                for target, sender in senders:
                    print(f"overhead {target}, layout {'on' if layout else 'off'} …", file=sys.stderr, flush=True)
                    overhead.append(await measure_overhead(run, sender, target, image, layout,
                                                           options.overhead_requests))
        finally:
            for _, sender in senders:
                await sender.aclose()
    return points, overhead


def gateway_share(overhead: list[dict]) -> dict[str, float | None]:
    """Per document: the gateway's overhead minus Triton's (p50)."""
    by_document: dict[str, dict[str, float | None]] = {}
    for row in overhead:
        by_document.setdefault(row["document"], {})[row["target"]] = row["overhead_s"]["p50"]
    return {
        document: (values["gateway"] - values["triton"]) if values.get("gateway") is not None
        and values.get("triton") is not None else None
        for document, values in by_document.items()
    }


def machine_info() -> dict:
    def cpuinfo(key: str) -> str | None:
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith(key):
                    return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return None

    memory = None
    try:
        memory = int(Path("/proc/meminfo").read_text().split()[1]) / 2**20  # MemTotal kB -> GiB
    except (OSError, ValueError, IndexError):
        pass
    return {
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": cpuinfo("model name"),
        "memory_gib": memory,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }


def versions() -> dict[str, str | None]:
    found = {}
    for name in VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def git_state() -> dict:
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""

    return {"commit": git("rev-parse", "HEAD") or "unknown", "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def run_benchmark(options: Options, argv: list[str]) -> dict:
    """Start the stack, measure, stop it; the results dictionary."""
    started = datetime.now(timezone.utc).astimezone()
    loadavg_before = os.getloadavg()
    with BenchStack(options.config, options.out / "stack") as stack:
        points, overhead = asyncio.run(benchmark(stack, options))
        stack_description = stack.describe()
    return {
        "schema": "docparse-bench/1",
        "run": {
            "started": started.isoformat(timespec="seconds"),
            "command": ["python", "-m", "bench.load", *argv],
            "target": options.target,
            "route": options.route,
            "documents": [{"name": d.name, "fileType": d.file_type} for d in options.documents],
            "layout_detection": options.layout,
            "budget": options.window.describe(),
            "warmup_s": options.warmup,
            "seconds": round(time.time() - started.timestamp(), 1),
        },
        "machine": {**machine_info(), "loadavg_before": loadavg_before, "loadavg_after": os.getloadavg()},
        "versions": versions(),
        "git": git_state(),
        "stack": stack_description,
        "points": points,
        "overhead": overhead,
        "gateway_share_s": gateway_share(overhead),
    }


# --- command line --------------------------------------------------------------------------


def positive_list(text: str, kind: type, flag: str) -> list:
    try:
        values = [kind(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UsageError(f"{flag} {text!r}: expected a comma-separated list of numbers, like 1,4,16") from None
    if not values or any(v <= 0 for v in values):
        raise UsageError(f"{flag} {text!r}: every value must be > 0")
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.load",
        description="Benchmark the whole service (VLM stand-in, tritonserver, gateway) with real documents.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    what = parser.add_argument_group("what to send")
    what.add_argument("--target", choices=["gateway", "triton"], default="gateway",
                      help="HTTP through the gateway, or gRPC straight to Triton")
    what.add_argument("--route", choices=["stream", "unary"], default="stream",
                      help="gateway route: /layout-parsing/stream (has per-stage timings) or /layout-parsing")
    what.add_argument("--document", action="append", metavar="SPEC",
                      help="pdf:N (generated N-page PDF), image (generated page PNG) or a file path; "
                           "repeat to cycle through several (default: pdf:2)")
    what.add_argument("--no-layout", action="store_true", help="send useLayoutDetection=false (one region per page)")
    load = parser.add_argument_group("load (one point per value)")
    load.add_argument("--concurrency", metavar="LIST", help="closed loop: clients at once, e.g. 1,4,16,64 (default)")
    load.add_argument("--rate", metavar="LIST", help="open loop: documents per second, e.g. 0.5,1,2")
    load.add_argument("--arrival", choices=["poisson", "uniform"], default="poisson", help="open-loop arrivals")
    load.add_argument("--max-in-flight", type=int, default=256, help="open loop: requests at once; later ones wait")
    load.add_argument("--duration", type=float, help="seconds measured per point (default 10)")
    load.add_argument("--requests", type=int, help="or: requests finished per point")
    load.add_argument("--warmup", type=float, default=3.0,
                      help="seconds before measuring (closed loop: also until one request per client finished)")
    load.add_argument("--timeout", type=float, default=600.0, help="seconds per request")
    load.add_argument("--overhead-requests", type=int, default=20,
                      help="requests per overhead measurement at concurrency 1 (0: skip it)")
    load.add_argument("--overhead-document", default="image", metavar="SPEC",
                      help="the one-page document of the overhead measurement, as --document (default: image)")
    service = parser.add_argument_group("the service")
    service.add_argument("--vlm-latency", type=float, default=0.2, help="seconds per VLM call (stand-in)")
    service.add_argument(
        "--vlm-profile", default=None,
        help="calibrated continuous-batching timing of the stand-in instead of --vlm-latency "
             "(bench/SIMULATOR.md), e.g. glm-ocr-a40",
    )
    service.add_argument("--vlm-slots", type=int, default=64, help="VLM calls running at once (--max-num-seqs)")
    service.add_argument("--vlm-max-concurrency", type=int, help="HPS_VLM_MAX_CONCURRENCY (default: --vlm-slots)")
    service.add_argument("--gateway-workers", type=int, default=2, help="gunicorn workers")
    service.add_argument("--max-concurrent-requests", type=int, default=64, help="HPS_MAX_CONCURRENT_REQUESTS per worker")
    service.add_argument("--set", action="append", default=[], metavar="HPS_NAME=VALUE",
                         help="any other setting for Triton and the gateway (repeatable)")
    parser.add_argument("--out", type=Path, help="results folder (default bench/results/<timestamp>)")
    return parser


def parse_options(argv: list[str]) -> Options:
    """Options from the command line; raises UsageError with the reason."""
    args = build_parser().parse_args(argv)
    if args.concurrency and args.rate:
        raise UsageError("give --concurrency or --rate, not both")
    if args.duration is not None and args.requests is not None:
        raise UsageError("give --duration or --requests, not both")
    if args.duration is not None and args.duration <= 0 or args.requests is not None and args.requests < 1:
        raise UsageError("--duration must be > 0 and --requests >= 1")
    for flag, value in (("--warmup", args.warmup), ("--overhead-requests", args.overhead_requests)):
        if value < 0:
            raise UsageError(f"{flag} must be >= 0, got {value}")
    for flag, value in (("--vlm-slots", args.vlm_slots), ("--gateway-workers", args.gateway_workers),
                        ("--max-concurrent-requests", args.max_concurrent_requests),
                        ("--max-in-flight", args.max_in_flight), ("--timeout", args.timeout)):
        if value <= 0:
            raise UsageError(f"{flag} must be > 0, got {value}")
    if args.vlm_latency < 0:
        raise UsageError(f"--vlm-latency must be >= 0, got {args.vlm_latency}")
    from vlmsim.profiles import PROFILES

    if args.vlm_profile is not None and args.vlm_profile not in PROFILES:
        raise UsageError(f"--vlm-profile {args.vlm_profile!r}: known profiles are {', '.join(sorted(PROFILES))}")
    if args.vlm_max_concurrency is not None and args.vlm_max_concurrency < 1:
        raise UsageError(f"--vlm-max-concurrency must be >= 1, got {args.vlm_max_concurrency}")
    if args.target == "triton" and args.route == "unary":
        raise UsageError("--route unary is a gateway route; Triton is always streamed")
    settings = {}
    for item in args.set:
        name, equals, value = item.partition("=")
        if not equals or not name.startswith(("HPS_", "UVICORN_", "GPU_")):
            raise UsageError(f"--set {item!r}: expected HPS_NAME=VALUE")
        settings[name] = value
    loads: list[ClosedLoop | OpenLoop]
    if args.rate:
        loads = [OpenLoop(rate, args.arrival, args.max_in_flight) for rate in positive_list(args.rate, float, "--rate")]
    else:
        loads = [ClosedLoop(c) for c in positive_list(args.concurrency or "1,4,16,64", int, "--concurrency")]
    window = Window(None, args.requests) if args.requests is not None else Window(args.duration or 10.0, None)
    out = args.out or DEFAULT_RESULTS / datetime.now().strftime("%Y%m%d-%H%M%S")
    return Options(
        target=args.target,
        route=args.route,
        documents=[load_document(spec) for spec in (args.document or ["pdf:2"])],
        layout=not args.no_layout,
        loads=loads,
        window=window,
        warmup=args.warmup,
        timeout=args.timeout,
        overhead_requests=args.overhead_requests,
        overhead_document=load_document(args.overhead_document),
        config=StackConfig(
            trace=args.overhead_requests > 0,
            vlm_latency=args.vlm_latency,
            vlm_slots=args.vlm_slots,
            vlm_max_concurrency=args.vlm_max_concurrency,
            gateway_workers=args.gateway_workers,
            max_concurrent_requests=args.max_concurrent_requests,
            settings=settings,
            simulator_options={"profile": args.vlm_profile} if args.vlm_profile else {},
        ),
        out=out,
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        options = parse_options(argv)
    except UsageError as exc:
        build_parser().error(str(exc))  # exits 2 with the usage line
    try:
        results = run_benchmark(options, argv)
    except LaunchError as exc:
        print(f"error: the service could not be started: {exc}\n(server logs: {options.out / 'stack'})",
              file=sys.stderr)
        return 1
    except (RuntimeError, OSError) as exc:  # the stack misbehaved during the measurement
        print(f"error: {exc}\n(server logs: {options.out / 'stack'})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; the service was stopped", file=sys.stderr)
        return 130
    paths = write_reports(results, options.out)
    print(markdown(results))
    print("\n".join(str(path) for path in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
