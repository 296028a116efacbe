"""Where one request's time goes, stage by stage, from the marks of every process.

The gateway and the orchestrator write stage marks (``docparse/tracing.py``) to one file;
the load generator adds the client's own times and the VLM stand-in its records of each
call (received, finished). Put in time order, the marks of a request cut its end-to-end
time into intervals, each named after the stage that ends it ("orchestrator.received":
from the gateway handing the request to Triton until the orchestrator has it). The
intervals add up to the end-to-end time exactly, so nothing is counted twice or lost.

Three intervals are the work the overhead target leaves out: rendering
("page.rendered"), layout detection ("page.layout_detected") and the VLM's own time
("vlm_server.finished"); all the others are the overhead of the service.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from bench.report import distribution

# The intervals that are not overhead, by the stage that ends them.
EXCLUDED = {"page.rendered": "render", "page.layout_detected": "layout", "vlm_server.finished": "VLM"}

# What happens in the interval that ends at each stage (in the usual order).
STAGES = {
    "client.sent": "",
    "gateway.received": "client → gateway: HTTP request and headers, routing, middleware",
    "gateway.validated": "gateway: body read, JSON parsed, request validated (base64 checked)",
    "gateway.to_triton": "gateway: deadline, inference slot, Triton input built",
    "orchestrator.received": "gRPC → tritonserver → orchestrator stub (Python backend)",
    "orchestrator.parsed": "orchestrator: request JSON parsed, base64 decoded",
    "render.requested": "orchestrator: document pipeline started",
    "page.rendered": "render: pdf_render BLS call, page image back (not overhead)",
    "page.layout_detected": "layout: layout_detection BLS call (not overhead)",
    "vlm.image_ready": "orchestrator: region cropped, resized, JPEG- and base64-encoded",
    "vlm.request_sent": "orchestrator: wait for a VLM slot",
    "vlm_server.received": "VLM request: JSON, HTTP to the VLM server, its body read",
    "vlm_server.finished": "VLM: the call's own time (not overhead)",
    "vlm.answer_received": "VLM answer: the server's HTTP response, read by our client",
    "page.recognized": "orchestrator: the page's answers gathered",
    "page.assembled": "orchestrator: page result built (Markdown, JSON)",
    "orchestrator.sent.page": "orchestrator: page event encoded and sent",
    "gateway.from_triton.page": "Triton → gateway: the page event",
    "client.received.page": "gateway → client: the page event (SSE; gRPC when straight to Triton)",
    "orchestrator.sent.final": "orchestrator: final event encoded and sent",
    "gateway.from_triton.final": "Triton → gateway: the final event",
    "client.received.final": "→ client: the final event",
    "client.done": "client: the stream closed",
}


@dataclass(frozen=True)
class Mark:
    at: float  # unix time, seconds
    log_id: str
    stage: str


def read_marks(path: Path) -> list[Mark]:
    """The marks of a trace file (``docparse.tracing`` lines); unreadable lines skipped."""
    marks = []
    if not path.exists():
        return marks
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split()
        if len(parts) != 4:
            continue
        try:
            marks.append(Mark(float(parts[0]), parts[2], parts[3]))
        except ValueError:
            continue
    return marks


def vlm_marks(calls: Iterable[dict]) -> list[Mark]:
    """The stand-in's records of its calls as marks (its clock is unix time too)."""
    marks = []
    for call in calls:
        if call.get("received") is not None and call.get("finished") is not None:
            marks.append(Mark(call["received"], call["request_id"], "vlm_server.received"))
            marks.append(Mark(call["finished"], call["request_id"], "vlm_server.finished"))
    return marks


def intervals(marks: list[Mark]) -> dict[str, float]:
    """One request's marks → seconds per stage: each interval between consecutive marks
    goes to the stage that ends it (a stage reached several times, as with several
    regions, gets the sum)."""
    ordered = sorted(marks, key=lambda m: m.at)
    spent: dict[str, float] = defaultdict(float)
    for before, after in zip(ordered, ordered[1:]):
        spent[after.stage] += after.at - before.at
    return dict(spent)


def breakdown(marks: list[Mark], log_ids: list[str]) -> dict:
    """Per stage, the distribution over ``log_ids`` of the seconds spent in it, plus the
    end-to-end time and the overhead (end-to-end minus the excluded stages)."""
    by_request: dict[str, list[Mark]] = defaultdict(list)
    wanted = set(log_ids)
    for mark in marks:
        if mark.log_id in wanted:
            by_request[mark.log_id].append(mark)
    per_stage: dict[str, list[float]] = defaultdict(list)
    totals, overheads = [], []
    for log_id in log_ids:
        request_marks = by_request.get(log_id, [])
        if len(request_marks) < 2:
            continue
        spent = intervals(request_marks)
        for stage in set(spent) | set(STAGES):
            per_stage[stage].append(spent.get(stage, 0.0))
        total = sum(spent.values())
        totals.append(total)
        overheads.append(total - sum(spent.get(stage, 0.0) for stage in EXCLUDED))
    order = list(STAGES) + sorted(set(per_stage) - set(STAGES))
    return {
        "requests": len(totals),
        "end_to_end_s": distribution(totals),
        "overhead_s": distribution(overheads),
        "stages": [
            {"stage": stage, "what": STAGES.get(stage, ""), "excluded": stage in EXCLUDED,
             "seconds": distribution(per_stage[stage])}
            for stage in order
            if per_stage[stage] and any(per_stage[stage])
        ],
    }
