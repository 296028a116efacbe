"""The async jobs API under load (issue #15, BENCHMARKS.md "Jobs"): a long job's memory,
and jobs' throughput against the synchronous route's.

Starts the stack (``bench.stack``) once, then:

1. **Long job** (``--pages``, default 1000): submits one job of the generated N-page
   PDF, reads every process's RSS (``/proc``, as ``bench.soak``) and the job's progress
   every ``--sample`` seconds until it is done, then fetches its result. Reports
   pages/s, each process's RSS at the start, at the 10% mark, at the end and at its
   peak, and calls a process flat when it grew at most ``--flat-mib`` between the 10%
   and 100% marks (the first 10% are warm-up: caches, pools, the stores' first pages).
   ``--long-jobs 2`` runs a second such job on the same stack: memory one job leaves
   behind and the next one reuses is not a leak; memory that grows again is.
2. **Jobs against sync** (``--compare-*``): C clients, each with one document of P
   pages in flight, for ``--compare-duration`` seconds per run: ``sync`` clients loop
   ``POST /layout-parsing``; ``jobs`` clients submit ``POST /jobs``, poll ``GET
   /jobs/{id}`` every ``--poll`` s until it ends, read ``/jobs/{id}/result`` and submit
   the next. Each run is a point of ``bench.point`` (warm-up, window, CPU per process),
   runs alternate sync, jobs, sync, jobs… (``--rounds``), and the report gives the
   ratio of the mean pages/s. HPS_JOB_CONCURRENCY is C, so one gateway worker can run
   all C jobs at once.

    python -m bench.jobs                                    # both, 1000 pages, C=8 P=4, 2 rounds of 60 s
    python -m bench.jobs --pages 200 --no-compare --long-jobs 2
    python -m bench.jobs --pages 0 --compare-concurrency 16 --rounds 3

Results go to ``--out`` (default bench/results/<timestamp>/): jobs.json, jobs.md,
jobs.png, and the servers' logs in stack/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import AsyncIterator, Callable

import aiohttp

from bench.documents import Document, load_document
from bench.jobs_report import comparison_summary, markdown, memory_summary, plot
from bench.loadgen import ClosedLoop
from bench.machine import provenance
from bench.options import DEFAULT_RESULTS
from bench.point import Run, Window, measure_point
from bench.sampling import cpu_summary, take_snapshot, wait_until_idle
from bench.senders import GatewaySender, RequestFailed, envelope_message, vlm_region_counter
from bench.soak import rss_mib
from bench.stack import BenchStack, StackConfig, explain_failure, read_cmdline
from docparse.protocol import json_bytes
from scripts.processes import LaunchError

JSON_HEADERS = {"Content-Type": "application/json"}
ENDED = {"succeeded", "partial", "failed", "cancelled"}


class JobsSender(GatewaySender):
    """A document through ``/jobs``, seen as ``bench.senders`` sees a request: submit,
    poll until the job ends, read its result; its pages come out when the result has
    been read (as the sync route's, which come with the answer)."""

    def __init__(self, url: str, timeout: float, poll: float, follow: bool = False) -> None:
        super().__init__(url, "jobs", timeout)
        self.name = "gateway jobs" + (" (following events)" if follow else "")
        self.poll = poll
        self.follow = follow  # wait on /jobs/{id}/events instead of polling
        self.phases: list[dict[str, float]] = []  # where each job's time went (``job_phases``)

    async def _json(self, method: str, path: str, expected: int, data: bytes | None = None) -> dict:
        try:
            async with self.http.request(method, f"{self.url}{path}", data=data,
                                         headers=JSON_HEADERS if data else None) as response:
                answer = await response.read()
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise RequestFailed(type(exc).__name__, str(exc) or repr(exc)) from None
        if response.status != expected:
            raise RequestFailed(f"HTTP {response.status} on {method} {path.split('/')[1]}", envelope_message(answer))
        return json.loads(answer)

    async def submit(self, body: dict) -> dict:
        """The 202's JobInfo."""
        return await self._json("POST", "/jobs", 202, json_bytes(body))

    async def info(self, job_id: str) -> dict:
        return await self._json("GET", f"/jobs/{job_id}", 200)

    async def result(self, job_id: str) -> dict:
        """The job's /layout-parsing envelope."""
        return await self._json("GET", f"/jobs/{job_id}/result", 200)

    async def wait(self, job_id: str) -> dict:
        """Poll until the job has ended; its last JobInfo (a failed job raises)."""
        while True:
            info = await self.info(job_id)
            if info["status"] in ENDED:
                if info["status"] not in ("succeeded", "partial"):
                    raise RequestFailed(f"job {info['status']}", str(info.get("error")))
                return info
            await asyncio.sleep(self.poll)

    async def follow_events(self, job_id: str) -> dict:
        """Read ``/jobs/{id}/events`` until its ``final`` or ``error`` event; the job's
        last JobInfo (a failed job raises)."""
        try:
            async with self.http.get(f"{self.url}/jobs/{job_id}/events") as response:
                event = ""
                async for raw in response.content:
                    line = raw.decode().rstrip("\r\n")
                    event = line.removeprefix("event: ") if line.startswith("event: ") else event
                    if not line and event in ("final", "error"):
                        break
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise RequestFailed(type(exc).__name__, str(exc) or repr(exc)) from None
        return await self.wait(job_id)  # ended: one status read

    async def events(self, body: dict) -> AsyncIterator[dict]:
        sent = time.time()
        job = await self.submit(body)
        submitted = time.time()
        info = await (self.follow_events(job["jobId"]) if self.follow else self.wait(job["jobId"]))
        noticed = time.time()
        result = (await self.result(job["jobId"]))["result"]
        self.phases.append(job_phases(info, sent, submitted, noticed, time.time()))
        for index, page in enumerate(result["layoutParsingResults"]):
            yield {"type": "page", "pageIndex": index, "result": page}
        yield {"type": "final", "dataInfo": result["dataInfo"], "timings": None}


def job_phases(info: dict, sent: float, submitted: float, noticed: float, read: float) -> dict[str, float]:
    """Seconds of each part of a job seen by its client (Unix times; the server's are
    the JobInfo's): the submission's answer, the wait for a worker, the run, until a
    poll saw it ended, the result's answer."""
    created, started, finished = (datetime.fromisoformat(info[name]).timestamp()
                                  for name in ("createdAt", "startedAt", "finishedAt"))
    return {"submit": submitted - sent, "queued": started - created, "running": finished - started,
            "until_seen": noticed - finished, "result": read - noticed, "total": read - sent}


# --- the long job ----------------------------------------------------------------------------


def process_labels(stack: BenchStack) -> dict[int, str]:
    """pid → a name for every process of the stack: the gunicorn master and its workers,
    tritonserver, each Python stub by model, what else runs under Triton (the render
    workers of pdf_render, the stubs' watchdogs), the simulator; with the pid."""
    roots = {stack.gateway.process.pid: "gateway master", stack.triton.process.pid: "tritonserver",
             stack.simulator.process.pid: "simulator"}
    labels = {}
    for role, pid in stack.processes():
        if pid in roots:
            name = roots[pid]
        elif role == "gateway":
            name = "gateway worker"
        elif role.startswith("stub:"):
            name = role
        else:
            name = helper_name(read_cmdline(pid))
        labels[pid] = f"{name} [{pid}]"
    return labels


def helper_name(cmdline: list[str]) -> str:
    """What a process under tritonserver that is not a stub is, from its command line."""
    cmdline = [arg for arg in cmdline if arg]
    text = " ".join(cmdline)
    if "stub_watchdog" in text:
        return f"watchdog:{cmdline[-1].removesuffix('_0_0')}"
    if "resource_tracker" in text:
        return "resource tracker"
    if "multiprocessing" in text or "pebble" in text:
        return "render worker"
    return Path(cmdline[0]).name if cmdline and cmdline[0] else "unknown"


def sample_memory(stack: BenchStack) -> dict[str, list[float]]:
    """label → [RSS, its private part] in MiB, of every process of the stack now."""
    found = {}
    for pid, label in process_labels(stack).items():
        value = rss_mib(pid)
        if value is not None:
            found[label] = [round(value[0], 2), round(value[1], 2)]
    return found


async def long_jobs(stack: BenchStack, args: argparse.Namespace) -> list[dict]:
    """``args.long_jobs`` jobs of ``args.pages`` pages, one after the other."""
    document = load_document(f"pdf:{args.pages}")
    sender = JobsSender(stack.gateway.url, args.timeout, args.sample)
    try:
        return [await long_job(stack, args, sender, document, number) for number in range(1, args.long_jobs + 1)]
    finally:
        await sender.aclose()


async def long_job(stack: BenchStack, args: argparse.Namespace, sender: JobsSender, document: Document,
                   number: int) -> dict:
    """One job, sampled every ``args.sample`` s until it ends, then its result read."""
    samples: list[dict] = []
    started = time.perf_counter()

    def record(mark: str, info: dict | None) -> None:
        samples.append({"t": round(time.perf_counter() - started, 2), "mark": mark,
                        "pages_done": info["pagesDone"] if info else 0, "rss_mib": sample_memory(stack)})

    await asyncio.to_thread(record, "start", None)
    processes = [*stack.processes(), ("loadgen", os.getpid())]
    before = await asyncio.to_thread(take_snapshot, stack, processes)
    job = await sender.submit(document.body(f"bench-jobs-long-{number}-{int(time.time())}", {"dpi": args.dpi}))
    info = await follow(sender, job["jobId"], args, lambda info: record("", info), stack)
    after = await asyncio.to_thread(take_snapshot, stack, processes)
    await asyncio.to_thread(record, "end", info)
    result = (await sender.result(job["jobId"]))["result"]
    await asyncio.to_thread(record, "after result", info)
    print(file=sys.stderr)
    run_s = (datetime.fromisoformat(info["finishedAt"]) - datetime.fromisoformat(info["startedAt"])).total_seconds()
    return {
        "number": number, "pages": args.pages, "dpi": args.dpi, "vlm_latency_s": args.vlm_latency, "job": info,
        "result_pages": len(result["layoutParsingResults"]), "result_failed_pages": result["summary"]["failedPages"],
        "run_s": round(run_s, 2), "pages_per_s": round(info["pagesDone"] / run_s, 3) if run_s else None,
        "client_s": round(after.clock - before.clock, 2),
        "cpu": cpu_summary(before, after, info["pagesDone"]),
        "samples": samples, "memory": memory_summary(samples, args.pages, args.flat_mib),
    }


async def follow(sender: JobsSender, job_id: str, args: argparse.Namespace, record: Callable[[dict], None],
                 stack: BenchStack) -> dict:
    """Sample every ``args.sample`` s until the job ends; its last JobInfo. A server of
    the stack that dies ends the run with the reason."""
    deadline = time.monotonic() + args.timeout
    while True:
        tick = time.monotonic()
        for name, server in (("tritonserver", stack.triton), ("gateway", stack.gateway), ("simulator", stack.simulator)):
            if server.process.poll() is not None:
                raise RuntimeError(f"{name} exited with {server.process.returncode} during the long job")
        info = await sender.info(job_id)
        if info["status"] in ENDED:
            if info["status"] not in ("succeeded", "partial"):
                raise RuntimeError(f"the long job ended {info['status']}: {info.get('error')}")
            return info
        await asyncio.to_thread(record, info)
        print(f"\r  long job: {info['pagesDone']}/{info['pagesTotal'] or '?'} pages", end="", file=sys.stderr,
              flush=True)
        if time.monotonic() > deadline:
            raise RuntimeError(f"the long job did not end within {args.timeout:g} s (--timeout)")
        await asyncio.sleep(max(0.0, args.sample - (time.monotonic() - tick)))


# --- jobs against sync -----------------------------------------------------------------------


async def compare(stack: BenchStack, args: argparse.Namespace) -> list[dict]:
    """Alternating runs of the sync route and of jobs at the same load."""
    document: Document = load_document(f"pdf:{args.compare_pages}")
    await asyncio.to_thread(stack.simulator.configure, latency=args.compare_vlm_latency)
    jobs = JobsSender(stack.gateway.url, args.timeout, args.poll, args.follow)
    senders = {"sync": GatewaySender(stack.gateway.url, "unary", args.timeout), "jobs": jobs}
    count = vlm_region_counter()
    runs = []
    try:
        for round_index in range(args.rounds):
            for mode in ("sync", "jobs"):
                print(f"compare round {round_index + 1}, {mode} …", file=sys.stderr, flush=True)
                run = Run(stack, senders[mode], [document], {"dpi": args.dpi},
                          Window(args.compare_duration, None), args.warmup, count)
                jobs.phases.clear()
                point = await measure_point(run, ClosedLoop(args.compare_concurrency))
                if mode == "jobs":
                    point["job_phases_s"] = mean_phases(jobs.phases)
                print(f"  {point['pages_per_s']:.2f} pages/s, {point['requests']['failed']} failed",
                      file=sys.stderr, flush=True)
                runs.append({"mode": mode, "round": round_index + 1, **point})
    finally:
        for sender in senders.values():
            await sender.aclose()
    return runs


def mean_phases(phases: list[dict[str, float]]) -> dict:
    """Mean seconds of each part over the jobs of a run (its warm-up and drain included)."""
    if not phases:
        return {"jobs": 0}
    return {"jobs": len(phases), **{name: round(sum(p[name] for p in phases) / len(phases), 4) for name in phases[0]}}


async def benchmark(stack: BenchStack, args: argparse.Namespace) -> dict:
    results: dict = {}
    if args.pages:
        results["long_jobs"] = await long_jobs(stack, args)
        await wait_until_idle(stack)
    if args.compare:
        runs = await compare(stack, args)
        results["comparison"] = {"concurrency": args.compare_concurrency, "pages_per_document": args.compare_pages,
                                 "duration_s": args.compare_duration, "vlm_latency_s": args.compare_vlm_latency,
                                 "poll_s": args.poll, "follow": args.follow, "runs": runs, "summary": comparison_summary(runs)}
    return results


# --- command line ----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.jobs", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--pages", type=int, default=1000, help="pages of the long job (0: skip it)")
    parser.add_argument("--long-jobs", type=int, default=1,
                        help="long jobs one after the other (a second one tells growth that is reused from a leak)")
    parser.add_argument("--sample", type=float, default=1.0, help="seconds between RSS samples of the long job")
    parser.add_argument("--flat-mib", type=float, default=10.0,
                        help="most RSS growth (MiB) of a process between the 10%% and 100%% marks to call it flat")
    parser.add_argument("--vlm-latency", type=float, default=0.05, help="seconds per VLM call in the long job")
    parser.add_argument("--dpi", type=int, default=72, help="rendering DPI of every request")
    parser.add_argument("--no-compare", dest="compare", action="store_false", help="skip jobs against sync")
    parser.add_argument("--compare-concurrency", type=int, default=8, help="documents in flight (C)")
    parser.add_argument("--compare-pages", type=int, default=4, help="pages per document (P)")
    parser.add_argument("--compare-duration", type=float, default=60.0, help="seconds measured per run")
    parser.add_argument("--compare-vlm-latency", type=float, default=0.2, help="seconds per VLM call in the comparison")
    parser.add_argument("--rounds", type=int, default=2, help="pairs of runs (sync, jobs)")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds before each run's window")
    parser.add_argument("--poll", type=float, default=0.2, help="seconds between a jobs client's status polls")
    parser.add_argument("--follow", action="store_true",
                        help="jobs clients wait on /jobs/{id}/events (SSE) instead of polling")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds a document (or the long job) may take")
    parser.add_argument("--out", type=Path, help="results folder (default bench/results/<timestamp>)")
    return parser


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.pages < 0 or args.long_jobs < 1 or args.sample <= 0 or args.flat_mib < 0 or args.dpi < 1 or args.timeout <= 0:
        parser.error("--pages must be >= 0, --long-jobs >= 1, --flat-mib >= 0, --sample, --dpi and --timeout > 0")
    if min(args.compare_concurrency, args.compare_pages, args.rounds) < 1 or args.compare_duration <= 0:
        parser.error("--compare-concurrency, --compare-pages and --rounds must be >= 1, --compare-duration > 0")
    if min(args.vlm_latency, args.compare_vlm_latency, args.warmup) < 0 or args.poll <= 0:
        parser.error("latencies and --warmup must be >= 0, --poll > 0")
    if not args.pages and not args.compare:
        parser.error("nothing to do: --pages 0 and --no-compare")
    args.out = args.out or DEFAULT_RESULTS / datetime.now().strftime("%Y%m%d-%H%M%S")
    return args


def stack_config(args: argparse.Namespace) -> StackConfig:
    settings = {"HPS_JOB_CONCURRENCY": str(args.compare_concurrency)}
    if args.pages > 1000:
        settings["HPS_MAX_PAGES"] = str(args.pages)
    return StackConfig(vlm_latency=args.vlm_latency, settings=settings)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    started = datetime.now().astimezone()
    try:
        with BenchStack(stack_config(args), args.out / "stack") as stack:
            measured = asyncio.run(benchmark(stack, args))
            description = stack.describe()
    except (LaunchError, RuntimeError, OSError, RequestFailed) as exc:
        return explain_failure(exc, args.out / "stack")
    results = {
        "schema": "docparse-bench-jobs/1",
        "run": {"started": started.isoformat(timespec="seconds"), "command": ["python", "-m", "bench.jobs", *argv],
                "seconds": round(time.time() - started.timestamp(), 1)},
        **provenance(), "stack": description, **measured,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "jobs.json").write_text(json.dumps(results, indent=1) + "\n")
    (args.out / "jobs.md").write_text(markdown(results))
    plot(results, args.out / "jobs.png")
    print(markdown(results))
    print("\n".join(str(args.out / name) for name in ("jobs.json", "jobs.md", "jobs.png")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
