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

The parts, by concern: bench.options (the command line), bench.documents (what is sent),
bench.senders (one request, gateway or Triton), bench.loadgen (closed and open loop),
bench.point (one point's window and numbers), bench.sampling (what the stack reports),
bench.overhead (the overhead measurement), bench.stages (its time cut into stages),
bench.machine (machine, versions, commit), bench.stack (the stack), bench.report (the files).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from datetime import datetime, timezone

from bench.documents import UsageError
from bench.machine import provenance
from bench.options import Options, build_parser, parse_options
from bench.overhead import gateway_share, measure_overheads
from bench.point import Run, measure_point
from bench.report import markdown, write_reports
from bench.senders import GatewaySender, Sender, TritonSender, VlmSender, vlm_region_counter
from bench.stack import BenchStack, explain_failure
from scripts.processes import LaunchError


async def benchmark(stack: BenchStack, options: Options) -> tuple[list[dict], list[dict]]:
    """Every point of load, then the overhead measurement: (points, overhead rows)."""
    sweep_sender: Sender
    if options.target == "triton":
        sweep_sender = TritonSender(stack.triton.grpc_url)
    elif options.target == "vlm":
        sweep_sender = VlmSender(stack.simulator.url, options.timeout)
    else:
        sweep_sender = GatewaySender(stack.gateway.url, options.route, options.timeout)
    count_regions = vlm_region_counter()
    request_options = {} if options.layout else {"useLayoutDetection": False}
    run = Run(stack, sweep_sender, options.documents, request_options, options.window, options.warmup, count_regions)
    points: list[dict] = []
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
    overhead: list[dict] = []
    if options.overhead_requests > 0:
        overhead = await measure_overheads(run, options.overhead_document, options.overhead_requests, options.timeout)
    return points, overhead


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
        **provenance(loadavg_before),
        "stack": stack_description,
        "points": points,
        "overhead": overhead,
        "gateway_share_s": gateway_share(overhead),
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        options = parse_options(argv)
    except UsageError as exc:
        build_parser().error(str(exc))  # exits 2 with the usage line
    try:
        results = run_benchmark(options, argv)
    except (LaunchError, RuntimeError, OSError) as exc:  # not started, or misbehaved during the measurement
        return explain_failure(exc, options.out / "stack")
    except KeyboardInterrupt:
        print("interrupted; the service was stopped", file=sys.stderr)
        return 130
    paths = write_reports(results, options.out)
    print(markdown(results))
    print("\n".join(str(path) for path in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
