"""The overhead of gateway + Triton + orchestration at concurrency 1: each request's
end-to-end time minus render, layout and VLM time, and (with the service's stage marks)
where the rest of it goes."""

from __future__ import annotations

import asyncio
import sys
import time

from bench.documents import Document
from bench.point import Run
from bench.report import distribution
from bench.senders import GatewaySender, RequestRecord, Sender, TritonSender, send
from bench.stages import Mark, breakdown, read_marks, vlm_marks


async def measure_overheads(run: Run, document: Document, requests: int, timeout: float) -> list[dict]:
    """The overhead through the gateway's streaming route and straight to Triton, layout
    off then on: one row each."""
    senders: list[tuple[str, Sender]] = [
        ("gateway", GatewaySender(run.stack.gateway.url, "stream", timeout)),
        ("triton", TritonSender(run.stack.triton.grpc_url)),
    ]
    overhead: list[dict] = []
    try:
        for layout in (False, True):
            for target, sender in senders:
                print(f"overhead {target}, layout {'on' if layout else 'off'} …", file=sys.stderr, flush=True)
                overhead.append(await measure_overhead(run, sender, target, document, layout, requests))
    finally:
        for _, sender in senders:
            await sender.aclose()
    return overhead


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
