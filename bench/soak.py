"""Memory under sustained load: peak RSS of every process of the stack, and whether it
grows (BENCHMARKS.md, "Memory").

Starts the stack (``bench.stack``), keeps ``--concurrency`` clients sending documents
through the gateway for ``--duration`` seconds, and reads every process's resident set
size (``/proc/<pid>/status`` VmRSS) every ``--sample`` seconds. Reports, per role, the RSS
after the warm-up, at the end and at its peak, and the growth between the two halves of
the run (mean of the second half over the first), so a leak shows as a steady rise.

    python -m bench.soak [--duration 600] [--concurrency 8] [--document pdf:10] [--out DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from bench.documents import load_document
from bench.machine import machine_info
from bench.senders import GatewaySender, send, vlm_region_counter
from bench.report import markdown_table
from bench.stack import BenchStack, StackConfig

REPO_ROOT = Path(__file__).resolve().parent.parent


def rss_mib(pid: int) -> tuple[float, float] | None:
    """(resident set size, its private part) of ``pid`` in MiB, or None when it is gone.
    The private part (RssAnon) leaves out the shared memory through which Triton and its
    Python stubs pass tensors, which VmRSS counts in every process that touched it."""
    try:
        fields = dict(
            line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
        )
        return int(fields["VmRSS"].split()[0]) / 1024, int(fields["RssAnon"].split()[0]) / 1024
    except (OSError, KeyError, ValueError):
        return None


def sample(stack: BenchStack) -> dict[str, float]:
    """RSS per role (gateway = master + workers, each Triton stub by model), and its
    private part as "<role> (private)"."""
    totals: dict[str, float] = {}
    for role, pid in stack.processes():
        value = rss_mib(pid)
        if value is not None:
            totals[role] = totals.get(role, 0.0) + value[0]
            totals[f"{role} (private)"] = totals.get(f"{role} (private)", 0.0) + value[1]
    return totals


async def soak(stack: BenchStack, args: argparse.Namespace) -> dict:
    document = load_document(args.document)
    options = {"useLayoutDetection": True}
    sender = GatewaySender(stack.gateway.url, "stream", timeout=600)
    count = vlm_region_counter()
    started = time.perf_counter()
    stop_at = started + args.duration
    pages = errors = 0
    error_kinds: dict[str, int] = {}
    samples: list[dict] = []
    dead: list[str] = []

    def running() -> bool:
        """Until the end, or until a server of the stack has died (then say which)."""
        for name, server in (("tritonserver", stack.triton), ("gateway", stack.gateway),
                             ("simulator", stack.simulator)):
            if server.process.poll() is not None and name not in dead:
                dead.append(f"{name} exited with {server.process.returncode}")
        return time.perf_counter() < stop_at and not dead

    async def client() -> None:
        nonlocal pages, errors
        while running():
            record = await send(sender, document, options, time.perf_counter(), count)
            pages += len(record.pages)
            if record.error is not None:
                errors += 1
                error_kinds[record.error.kind] = error_kinds.get(record.error.kind, 0) + 1

    async def sampler() -> None:
        while running():
            samples.append({"t": round(time.perf_counter() - started, 1), "pages": pages,
                            "rss_mib": await asyncio.to_thread(sample, stack)})
            await asyncio.sleep(args.sample)

    try:
        await asyncio.gather(sampler(), *(client() for _ in range(args.concurrency)))
    finally:
        await sender.aclose()
    samples.append({"t": round(time.perf_counter() - started, 1), "pages": pages, "rss_mib": sample(stack)})
    return {"pages": pages, "errors": errors, "error_kinds": error_kinds, "died": dead,
            "seconds": round(time.perf_counter() - started, 1), "samples": samples}


def summarize(result: dict, warmup: float) -> dict[str, dict]:
    samples = [s for s in result["samples"] if s["t"] >= warmup] or result["samples"]
    half = len(samples) // 2
    roles = sorted({role for s in samples for role in s["rss_mib"]})
    summary = {}
    for role in roles:
        series = [s["rss_mib"].get(role) for s in samples if role in s["rss_mib"]]
        first, second = series[:half] or series, series[half:] or series
        summary[role] = {
            "after_warmup_mib": round(series[0], 1),
            "end_mib": round(series[-1], 1),
            "peak_mib": round(max(s["rss_mib"].get(role, 0) for s in result["samples"]), 1),
            "growth_second_half_pct": round((sum(second) / len(second) / (sum(first) / len(first)) - 1) * 100, 2),
        }
    return summary


def markdown(results: dict) -> str:
    header = ["process", "RSS after warm-up MiB", "RSS at end MiB", "peak MiB", "second half vs first half"]
    rows = [
        [role, str(row["after_warmup_mib"]), str(row["end_mib"]), str(row["peak_mib"]),
         f"{row['growth_second_half_pct']:+.2f}%"]
        for role, row in results["summary"].items()
    ]
    return "\n".join([
        f"# Memory soak ({results['started']})", "",
        f"{results['pages']} pages in {results['seconds']} s ({results['errors']} failed requests), "
        f"{results['concurrency']} clients, {results['document']}, layout on; RSS sampled every "
        f"{results['sample_seconds']} s, warm-up {results['warmup_seconds']} s.", "",
        *([f"**Stopped early: {'; '.join(results['died'])}.**", ""] if results["died"] else []),
        *([f"Errors by kind: {results['error_kinds']}", ""] if results["error_kinds"] else []),
        markdown_table(header, rows),
    ]) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=600, help="seconds of load")
    parser.add_argument("--concurrency", type=int, default=8, help="clients, each one document at a time")
    parser.add_argument("--document", default="pdf:10", help="pdf:N, image, or a file")
    parser.add_argument("--sample", type=float, default=10, help="seconds between RSS samples")
    parser.add_argument("--warmup", type=float, default=60, help="seconds before the baseline sample")
    parser.add_argument("--vlm-latency", type=float, default=0.2, help="seconds per VLM call")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default bench/results/soak-<time>)")
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.concurrency < 1 or args.sample <= 0:
        parser.error("--duration and --sample must be > 0 and --concurrency >= 1")
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    out = args.out or REPO_ROOT / "bench" / "results" / f"soak-{started.replace(':', '')}"
    out.mkdir(parents=True, exist_ok=True)
    with BenchStack(StackConfig(vlm_latency=args.vlm_latency), out / "stack") as stack:
        result = asyncio.run(soak(stack, args))
    results = {
        "schema": "docparse-soak/1", "started": started, "document": args.document,
        "concurrency": args.concurrency, "sample_seconds": args.sample, "warmup_seconds": args.warmup,
        "machine": machine_info(), **result, "summary": summarize(result, args.warmup),
    }
    (out / "soak.json").write_text(json.dumps(results, indent=2))
    (out / "soak.md").write_text(markdown(results))
    print(markdown(results))
    print(out / "soak.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
