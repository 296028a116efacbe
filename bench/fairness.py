"""Fair scheduling across documents (issue #19, BENCHMARKS.md "Fair scheduling"): how
long does a one-page request take while big documents keep the VLM busy?

Starts the stack (``bench.stack``) once with the VLM stand-in at N slots (``--slots``,
default 16; its ``max_num_seqs`` = N and the orchestrator's HPS_VLM_MAX_CONCURRENCY = N)
running the calibrated continuous-batching profile ``glm-ocr-a40``, layout detection off
(``useLayoutDetection: false``: each page is one VLM call). Then:

1. **alone**: the one-page request (``--small-pages`` of the big document, default its
   first page, through ``/layout-parsing/stream``) ``--samples`` times, one after the
   other, nothing else running;
2. **under load** (``--load sync``, and/or ``jobs``): ``--big`` clients (default 8) each
   keep one big document in flight (a closed loop: the next as soon as the last ends;
   ``sync`` through ``/layout-parsing/stream``, ``jobs`` through ``POST /jobs`` and
   polling), and once the VLM is full the one-page request is sent ``--samples`` times
   again, one after the other, a random pause of up to ``--gap`` s between them (so they
   land at every phase of the big documents' work).

Per phase: the one-page request's latency (p50, p95, max) and its p50 against the p50
alone; under load, the VLM's utilisation over the samples' window (the stand-in's busy
slot-seconds / (N x window), as ``bench.sampling``) and its answered calls/s. The
target (issue #19): p50 under load <= 1.5x alone, utilisation >= 0.95.

The big document is the real 17-page born-digital PDF
``/usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf`` when it is there, else the
generated ``pdf:17`` (``--big-document`` takes any ``bench.documents`` spec).

    python -m bench.fairness                         # N=16, 8 big documents, sync load, 20 samples
    python -m bench.fairness --load sync,jobs --trace  # both loads; where the request's time goes

``--trace`` has the gateway and the orchestrator write their stage marks
(``docparse/tracing.py``) and cuts the one-page request's time into stages per phase
(``bench.stages``): waiting for a VLM slot ("vlm.request_sent") is the queue this
benchmark is about.

Results go to ``--out`` (default bench/results/fairness-<timestamp>/): fairness.json,
fairness.md, and the servers' logs in stack/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from datetime import datetime
from pathlib import Path

from bench.documents import Document, UsageError, load_document
from bench.jobs import JobsSender
from bench.loadgen import ClosedLoop, generate
from bench.machine import provenance
from bench.options import DEFAULT_RESULTS, hps_settings
from bench.report import _num, distribution, markdown_table
from bench.sampling import VlmSampler, take_snapshot, vlm_utilisation, wait_until_idle
from bench.senders import GatewaySender, RequestFailed, RequestRecord, Sender, send
from bench.stack import BenchStack, StackConfig, explain_failure
from bench.stages import breakdown, read_marks, vlm_marks
from scripts.processes import LaunchError

REAL_PDF = Path("/usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf")
DEFAULT_PROFILE = "glm-ocr-a40"
TARGET_RATIO = 1.5  # issue #19: p50 under load <= 1.5x p50 alone
TARGET_UTILISATION = 0.95
LAYOUT_OFF = {"useLayoutDetection": False}
SATURATION_TIMEOUT = 120.0  # seconds the big documents may take to fill the VLM


def default_big_document() -> str:
    return str(REAL_PDF) if REAL_PDF.is_file() else "pdf:17"


def no_regions(_: dict) -> int:
    return 0


async def small_requests(sender: Sender, document: Document, options: dict, samples: int,
                         gap: float, rng: random.Random) -> list[RequestRecord]:
    """``samples`` one-page requests, one after the other, a random pause of up to ``gap``
    seconds before each; a failed one stops the run (its numbers would mean nothing)."""
    records = []
    for _ in range(samples):
        await asyncio.sleep(rng.uniform(0, gap))
        record = await send(sender, document, options, time.perf_counter(), no_regions)
        if record.error is not None:
            raise RuntimeError(f"the one-page request failed: {record.error}")
        records.append(record)
    return records


async def wait_until_full(stack: BenchStack, slots: int, load: asyncio.Task) -> None:
    """Until the VLM runs ``slots`` calls (the big documents fill it), or raise."""
    deadline = time.monotonic() + SATURATION_TIMEOUT
    while time.monotonic() < deadline:
        if load.done():
            load.result()
            raise RuntimeError("the big documents' load stopped early")
        if (await asyncio.to_thread(stack.simulator.stats))["running"] >= slots:
            return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"the big documents did not fill the VLM's {slots} slots in {SATURATION_TIMEOUT:.0f} s")


async def under_load(stack: BenchStack, args: argparse.Namespace, kind: str, small: Sender,
                     rng: random.Random) -> dict:
    """The one-page request's samples while ``args.big`` clients keep big documents in
    flight (``kind``: sync or jobs), with the VLM's utilisation over their window."""
    big_sender: Sender = (GatewaySender(stack.gateway.url, "stream", args.timeout) if kind == "sync"
                          else JobsSender(stack.gateway.url, args.timeout, poll=0.25))
    big_done: list[RequestRecord] = []
    stop = asyncio.Event()

    def issue(scheduled: float):
        return send(big_sender, args.big_document, LAYOUT_OFF, scheduled, no_regions)

    load = asyncio.create_task(generate(ClosedLoop(args.big, args.stagger), issue, big_done.append, stop))
    try:
        await wait_until_full(stack, args.slots, load)
        await asyncio.sleep(args.warmup)
        processes = stack.processes()
        before = await asyncio.to_thread(take_snapshot, stack, processes)
        sampler = VlmSampler(f"{stack.simulator.root}/metrics")
        sampler.start()
        records = await small_requests(small, args.small_document, args.small_options, args.samples, args.gap, rng)
        after = await asyncio.to_thread(take_snapshot, stack, processes)
        samples = await sampler.stop()
        stop.set()
        await load
    finally:
        load.cancel()
        await asyncio.gather(load, return_exceptions=True)
        await big_sender.aclose()
    failed = [r for r in big_done if r.error is not None]
    if failed:
        raise RuntimeError(f"{len(failed)} big document(s) failed, e.g. {failed[0].error}")
    await wait_until_idle(stack)
    window = after.clock - before.clock
    return {
        "phase": f"under load ({kind})",
        "load": {"kind": kind, "big_documents": args.big, "stagger_s": args.stagger},
        "window_s": window,
        "log_ids": [r.log_id for r in records],
        "latency_s": distribution([r.finished - r.sent for r in records]),
        "vlm_utilisation": vlm_utilisation(before, after, samples),
        # The stand-in's answered calls (pages: layout is off), not the big documents'
        # pages, which arrive 17 at a time with each finished document.
        "vlm_calls_per_s": (after.vlm_stats["succeeded"] - before.vlm_stats["succeeded"]) / window,
        "big_documents_finished": len(big_done),
    }


async def benchmark(stack: BenchStack, args: argparse.Namespace) -> list[dict]:
    """The phases: warm-up (uncounted), alone, then under each load."""
    rng = random.Random(args.seed)
    small = GatewaySender(stack.gateway.url, "stream", args.timeout)
    try:
        await small_requests(small, args.small_document, args.small_options, 2, 0.0, rng)  # warm-up
        print(f"alone: {args.samples} one-page requests …", file=sys.stderr, flush=True)
        alone = await small_requests(small, args.small_document, args.small_options, args.samples, args.gap, rng)
        phases = [{"phase": "alone", "log_ids": [r.log_id for r in alone],
                   "latency_s": distribution([r.finished - r.sent for r in alone])}]
        for kind in args.load:
            print(f"under load: {args.big} x {args.big_document.name} ({kind}) …", file=sys.stderr, flush=True)
            phases.append(await under_load(stack, args, kind, small, rng))
    finally:
        await small.aclose()
    if stack.trace_file is not None:
        marks = read_marks(stack.trace_file) + vlm_marks(await asyncio.to_thread(stack.simulator.calls))
        for phase in phases:
            phase["stages"] = breakdown(marks, phase["log_ids"])
    return phases


def stage_table(phases: list[dict]) -> list[str]:
    """Where the one-page request's time goes (p50 seconds per stage), phase by phase."""
    traced = [phase for phase in phases if "stages" in phase]
    if not traced:
        return []
    by_phase = [{s["stage"]: s for s in phase["stages"]["stages"]} for phase in traced]
    names = [s["stage"] for s in max((p["stages"]["stages"] for p in traced), key=len)]
    rows = [[name, *(_num(stages[name]["seconds"]["p50"], 3) if name in stages else "–" for stages in by_phase)]
            for name in names]
    header = ["stage (interval ending there)", *(f"{phase['phase']} p50 s" for phase in traced)]
    lines = ["## Where the one-page request's time goes", "", markdown_table(header, rows), ""]
    floors = [phase for phase in traced if phase.get("floor_s") is not None]
    if floors:
        rows = [[phase["phase"], _num(phase["vlm_call_s"], 3), _num(phase["floor_s"], 3),
                 _num(phase["latency_s"]["p50"] / phase["floor_s"]) + "x"] for phase in floors]
        lines += ["The floor: the p50 alone with its VLM call as long as the call's own time in this "
                  "phase (stage vlm_server.finished): what a service that sends the call at once gets "
                  "from a VLM as loaded as this one.", "",
                  markdown_table(["phase", "VLM call's own time p50 s", "floor s", "p50 / floor"], rows), ""]
    return lines


def vlm_call_seconds(phase: dict) -> float | None:
    """The p50 of the one-page request's VLM call as the stand-in timed it (traced runs)."""
    stages = {s["stage"]: s for s in phase.get("stages", {}).get("stages", [])}
    return stages["vlm_server.finished"]["seconds"]["p50"] if "vlm_server.finished" in stages else None


def summarize(phases: list[dict]) -> list[dict]:
    """Each phase with its p50 against the p50 alone and the targets' verdicts."""
    alone = phases[0]["latency_s"]["p50"]
    rows = []
    for phase in phases:
        row = dict(phase)
        p50 = phase["latency_s"]["p50"]
        row["p50_vs_alone"] = p50 / alone if alone and p50 is not None else None
        row["vlm_call_s"] = vlm_call_seconds(phase)
        alone_call = vlm_call_seconds(phases[0])
        if row["vlm_call_s"] is not None and alone_call is not None and alone is not None:
            row["floor_s"] = alone - alone_call + row["vlm_call_s"]
        if "vlm_utilisation" in phase:
            utilisation = phase["vlm_utilisation"]["value"]
            row["target_met"] = (row["p50_vs_alone"] is not None and row["p50_vs_alone"] <= TARGET_RATIO
                                 and utilisation is not None and utilisation >= TARGET_UTILISATION)
        rows.append(row)
    return rows


def markdown(results: dict) -> str:
    run = results["run"]
    lines = [
        "# Fair scheduling: a one-page request beside big documents",
        "",
        f"{run['slots']} VLM slots ({run['vlm_profile']}), layout off; one-page request: {run['small_document']} "
        f"pages {run['small_pages']}; load: {run['big']} x {run['big_document']} in flight; "
        f"{run['samples']} samples per phase. Target: p50 under load <= {TARGET_RATIO}x alone, "
        f"utilisation >= {TARGET_UTILISATION}.",
        "",
    ]
    rows = []
    for phase in results["phases"]:
        latency = phase["latency_s"]
        utilisation = phase.get("vlm_utilisation", {}).get("value")
        rows.append([
            phase["phase"], _num(latency["p50"]), _num(latency["p95"]), _num(latency["max"]),
            _num(phase["p50_vs_alone"]) + "x", _num(utilisation, 3),
            _num(phase.get("vlm_calls_per_s"), 1),
            {True: "met", False: "**not met**"}.get(phase.get("target_met"), "–"),
        ])
    header = ["phase", "p50 s", "p95 s", "max s", "p50 / alone", "VLM utilisation", "VLM calls/s", "target"]
    lines += [markdown_table(header, rows), ""]
    return "\n".join(lines + stage_table(results["phases"]))


# --- command line ----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.fairness", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--slots", type=int, default=16,
                        help="N: the VLM's max_num_seqs and the orchestrator's HPS_VLM_MAX_CONCURRENCY")
    parser.add_argument("--big", type=int, default=8, help="big documents kept in flight under load")
    parser.add_argument("--big-document", default=None, metavar="SPEC",
                        help=f"pdf:N, image or a file (default {REAL_PDF} when present, else pdf:17)")
    parser.add_argument("--small-pages", default="1", help="the one-page request's pages of the big document")
    parser.add_argument("--load", default="sync", help="the big documents' route(s): sync, jobs or sync,jobs")
    parser.add_argument("--samples", type=int, default=20, help="one-page requests per phase")
    parser.add_argument("--gap", type=float, default=0.5, help="most seconds of random pause before each sample")
    parser.add_argument("--stagger", type=float, default=1.0, help="seconds between the big clients' starts")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds after the VLM is full before sampling")
    parser.add_argument("--vlm-profile", default=DEFAULT_PROFILE, help="the stand-in's batching profile")
    parser.add_argument("--seed", type=int, default=1, help="seed of the random pauses")
    parser.add_argument("--trace", action="store_true",
                        help="stage marks (HPS_TRACE_FILE): where the one-page request's time goes, per phase")
    parser.add_argument("--set", action="append", default=[], metavar="HPS_NAME=VALUE",
                        help="any other setting for Triton and the gateway (repeatable)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds a request may take")
    parser.add_argument("--out", type=Path, help="results folder (default bench/results/fairness-<timestamp>)")
    return parser


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.load = [part.strip() for part in args.load.split(",") if part.strip()]
    if not args.load or set(args.load) - {"sync", "jobs"}:
        parser.error(f"--load: sync, jobs or sync,jobs (got {','.join(args.load) or 'nothing'})")
    if min(args.slots, args.big, args.samples) < 1 or args.timeout <= 0:
        parser.error("--slots, --big and --samples must be >= 1, --timeout > 0")
    if min(args.gap, args.stagger, args.warmup) < 0:
        parser.error("--gap, --stagger and --warmup must be >= 0")
    from vlmsim.profiles import PROFILES

    if args.vlm_profile not in PROFILES:
        parser.error(f"--vlm-profile {args.vlm_profile!r}: known profiles are {', '.join(sorted(PROFILES))}")
    try:
        args.settings = hps_settings(args.set)
        args.big_document = load_document(args.big_document or default_big_document())
    except UsageError as exc:
        parser.error(str(exc))
    args.small_document = args.big_document
    args.small_options = {**LAYOUT_OFF, "pages": args.small_pages}
    args.out = args.out or DEFAULT_RESULTS / datetime.now().strftime("fairness-%Y%m%d-%H%M%S")
    return args


def stack_config(args: argparse.Namespace) -> StackConfig:
    """N slots in the stand-in and in the orchestrator's bound; every big job runnable at
    once (HPS_JOB_CONCURRENCY per gateway worker)."""
    return StackConfig(
        vlm_latency=0.0, vlm_slots=args.slots, vlm_max_concurrency=args.slots,
        settings={"HPS_JOB_CONCURRENCY": str(args.big), **args.settings},
        simulator_options={"profile": args.vlm_profile}, trace=args.trace,
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    started = datetime.now().astimezone()
    loadavg_before = os.getloadavg()
    try:
        with BenchStack(stack_config(args), args.out / "stack") as stack:
            phases = asyncio.run(benchmark(stack, args))
            description = stack.describe()
    except (LaunchError, RuntimeError, OSError, RequestFailed) as exc:
        return explain_failure(exc, args.out / "stack")
    results = {
        "schema": "docparse-bench-fairness/1",
        "run": {"started": started.isoformat(timespec="seconds"), "command": ["python", "-m", "bench.fairness", *argv],
                "seconds": round(time.time() - started.timestamp(), 1), "slots": args.slots, "big": args.big,
                "big_document": args.big_document.name, "small_document": args.small_document.name,
                "small_pages": args.small_pages, "samples": args.samples, "gap_s": args.gap,
                "vlm_profile": args.vlm_profile, "target_ratio": TARGET_RATIO,
                "target_utilisation": TARGET_UTILISATION},
        **provenance(loadavg_before), "stack": description,
        "phases": summarize(phases),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fairness.json").write_text(json.dumps(results, indent=1) + "\n")
    (args.out / "fairness.md").write_text(markdown(results))
    print(markdown(results))
    print("\n".join(str(args.out / name) for name in ("fairness.json", "fairness.md")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
