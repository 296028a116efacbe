"""``python -m bench.fuzz``: start the stack (VLM stand-in, tritonserver with the
stand-in layout model, the gateway under gunicorn), send ``--inputs`` fuzz inputs made
from ``--seed``, and write results.json, results.md and a reproducer per failure under
``--out`` (default bench/results/fuzz-<time>/). Exit code 0 only for a clean run.

    python -m bench.fuzz --inputs 10000                  # make fuzz
    python -m bench.fuzz --url http://127.0.0.1:8080     # a gateway already running
    python -m bench.fuzz --url URL --replay bench/results/fuzz-*/failures/000123.json
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx

from bench.fuzz.checks import send
from bench.fuzz.inputs import plan
from bench.fuzz.probes import Probe
from bench.fuzz.report import summary, write
from bench.fuzz.run import Tally, Target, fuzz
from bench.machine import git_state
from bench.stack import REPO_ROOT, BenchStack, StackConfig

PROGRESS_EVERY = 500  # inputs between progress lines


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.fuzz", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inputs", type=int, default=10_000, help="inputs to send (default 10000)")
    parser.add_argument("--seed", type=int, default=1, help="makes the same inputs again (default 1)")
    parser.add_argument("--concurrency", type=int, default=4, help="clients sending at once (default 4)")
    parser.add_argument("--bound", type=float, default=60.0, help="seconds an answer may take (default 60)")
    parser.add_argument("--max-failures", type=int, default=100, help="stop after this many failures")
    parser.add_argument("--out", type=Path, help="results folder (default bench/results/fuzz-<time>)")
    parser.add_argument("--url", help="fuzz this gateway instead of starting a stack (no process checks)")
    parser.add_argument("--replay", type=Path, nargs="+", help="send these reproducers to --url again")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    options = build_parser().parse_args(argv)
    if options.replay:
        if not options.url:
            build_parser().error("--replay needs --url")
        return replay(options.url, options.replay, options.bound)
    out = options.out or REPO_ROOT / "bench" / "results" / f"fuzz-{datetime.now():%Y%m%d-%H%M%S}"
    about = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
             "command": " ".join(["python -m bench.fuzz", *argv]), "seed": options.seed,
             "commit": git_state()["commit"], "concurrency": options.concurrency, "bound_s": options.bound}
    if options.url:
        return run_and_report(Target(options.url.rstrip("/")), options, out, about)
    print(f"starting the stack (logs in {out / 'stack'}) ...", flush=True)
    with BenchStack(StackConfig(vlm_latency=0.01), out / "stack") as stack:
        assert stack.gateway and stack.triton and stack.gateway.process and stack.triton.process
        target = Target(stack.gateway.url, stack.gateway.process.pid, stack.triton.process.pid)
        return run_and_report(target, options, out, {**about, "stack": stack.describe()["env"]})


def run_and_report(target: Target, options: argparse.Namespace, out: Path, about: dict) -> int:
    spec = httpx.get(f"{target.url}/openapi.json", timeout=30).json()
    probes = plan(spec, options.inputs, options.seed)
    print(f"sending {options.inputs} inputs from {options.concurrency} clients to {target.url} ...", flush=True)
    result = fuzz(target, probes, options.inputs, options.concurrency, options.bound,
                  failures_dir=out / "failures", max_failures=options.max_failures,
                  progress=Progress(options.inputs))
    print(write(out, summary(result, about)))
    print(f"results in {out}")
    return 0 if result.clean else 1


class Progress:
    """A line every PROGRESS_EVERY answers: how many, how fast, failures so far."""

    def __init__(self, inputs: int) -> None:
        self.inputs = inputs
        self.start = time.monotonic()
        self.printed = 0
        self.lock = threading.Lock()

    def __call__(self, tally: Tally) -> None:
        with self.lock:
            if tally.sent - self.printed < PROGRESS_EVERY:
                return
            self.printed = tally.sent
            elapsed = time.monotonic() - self.start
            print(f"  {tally.sent}/{self.inputs} inputs in {elapsed:.0f} s ({tally.sent / elapsed:.1f}/s), "
                  f"{len(tally.failures)} failures", flush=True)


def replay(url: str, files: list[Path], bound: float) -> int:
    """Send saved reproducers again; exit code 1 while any still fails."""
    failing = 0
    with httpx.Client(base_url=url.rstrip("/"), timeout=httpx.Timeout(bound, connect=10.0)) as http:
        for path in files:
            probe = Probe.from_json(json.loads(path.read_text()))
            outcome = send(http, probe, bound)
            failing += outcome.problem is not None
            print(f"{path}: {probe.method} {probe.path} -> {outcome.status} in {outcome.seconds:.2f} s: "
                  f"{outcome.problem or 'fine'}")
    return 1 if failing else 0


if __name__ == "__main__":
    raise SystemExit(main())
