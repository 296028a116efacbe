"""One measured point of load: warm up, measure a window (a duration or a number of
requests), let the requests still in flight finish uncounted, wait until the service is
idle, then the point's numbers from the requests and the stack's snapshots."""

from __future__ import annotations

import asyncio
import itertools
import os
from dataclasses import dataclass
from typing import Awaitable, Callable

from bench.documents import Document
from bench.loadgen import ClosedLoop, Issue, OpenLoop, generate
from bench.report import distribution
from bench.sampling import (
    Snapshot,
    VlmSampler,
    cpu_summary,
    stage_cpu,
    take_snapshot,
    triton_compute,
    vlm_utilisation,
    wait_until_idle,
)
from bench.senders import RequestRecord, Sender, send
from bench.stack import BenchStack


@dataclass(frozen=True)
class Window:
    """How long a point is measured: a fixed time, or until enough requests finished."""

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
    """Warm up, measure the window, let the requests in flight finish uncounted and the
    service go idle (so the next point starts from rest); the point's numbers."""
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
