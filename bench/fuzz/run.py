"""A fuzz run against a running gateway: a few clients send the inputs, every answer is
judged (``bench.fuzz.checks``), failures are saved as reproducers, and afterwards every
gateway worker and Triton Python stub must be the process it was before (none crashed
and was replaced) and ``/health/ready`` must answer 200."""

from __future__ import annotations

import heapq
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import httpx

from bench.fuzz.checks import Outcome, send
from bench.fuzz.probes import STREAM, UNARY, Probe
from bench.stack import descendants, parent_map, read_cmdline, stub_model

SLOWEST = 10  # answers listed in the report
OPERATIONS = {f"POST {UNARY}", f"POST {STREAM}", "GET /health", "GET /health/ready", "GET /metrics",
              "GET /openapi.json", "GET /docs", "GET /redoc"}


@dataclass(frozen=True)
class Target:
    """The gateway to fuzz, and the process ids whose children must survive (None: not
    watched, e.g. a gateway started elsewhere)."""

    url: str
    gateway_pid: int | None = None  # the gunicorn master
    triton_pid: int | None = None


@dataclass
class Tally:
    """What came back so far, counted by input kind and by path; shared by the clients."""

    failures_dir: Path | None = None
    sent: int = 0
    by_kind: dict[str, Counter] = field(default_factory=dict)
    by_path: dict[str, Counter] = field(default_factory=dict)
    slowest: list[tuple[float, int, str, str]] = field(default_factory=list)  # a min-heap
    failures: list[dict[str, Any]] = field(default_factory=list)
    harness_errors: list[str] = field(default_factory=list)  # the fuzzer's own bugs: the run stopped
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, probe: Probe, outcome: Outcome) -> None:
        status = str(outcome.status) if outcome.status is not None else "no answer"
        with self.lock:
            self.sent += 1
            self.by_kind.setdefault(probe.kind, Counter())[status] += 1
            self.by_path.setdefault(operation(probe), Counter())[status] += 1
            entry = (outcome.seconds, probe.index, probe.kind, status)
            (heapq.heappush if len(self.slowest) < SLOWEST else heapq.heappushpop)(self.slowest, entry)
            if outcome.problem is not None:
                self.failures.append(self.record(probe, outcome))

    def record(self, probe: Probe, outcome: Outcome) -> dict[str, Any]:
        """A failure as the report lists it, its reproducer saved."""
        failure = {"index": probe.index, "kind": probe.kind, "request": f"{probe.method} {probe.path}",
                   "status": outcome.status, "seconds": round(outcome.seconds, 3), "problem": outcome.problem}
        if self.failures_dir is not None:
            self.failures_dir.mkdir(parents=True, exist_ok=True)
            path = self.failures_dir / f"{probe.index:06d}.json"
            probe.save(path, {"outcome": failure})
            failure["reproducer"] = str(path)
        return failure


@dataclass
class FuzzResult:
    inputs: int  # how many were meant to be sent
    tally: Tally
    seconds: float
    lost: dict[int, str]  # watched processes gone after the run: pid → role
    replaced: dict[int, str]  # processes of those roles that are new (a crash, restarted)
    watched: int
    ready_status: int | None

    @property
    def clean(self) -> bool:
        return (not self.tally.failures and not self.tally.harness_errors and not self.lost and not self.replaced
                and self.ready_status == 200 and self.tally.sent == self.inputs)


def fuzz(
    target: Target,
    probes: Iterable[Probe],
    inputs: int,
    concurrency: int = 4,
    bound: float = 60.0,
    failures_dir: Path | None = None,
    max_failures: int = 100,
    progress: Callable[[Tally], None] | None = None,
) -> FuzzResult:
    """Send ``probes`` (``inputs`` of them) from ``concurrency`` clients, each waiting for
    its answer before it sends the next; stop early past ``max_failures`` failures."""
    before = watched_processes(target)
    tally = Tally(failures_dir)
    source, source_lock = iter(probes), threading.Lock()
    start = time.monotonic()

    def client() -> None:
        with httpx.Client(base_url=target.url, timeout=httpx.Timeout(bound, connect=10.0)) as http:
            try:
                for probe in locked(source, source_lock):
                    tally.add(probe, send(http, probe, bound))
                    if progress is not None:
                        progress(tally)
                    if len(tally.failures) >= max_failures:
                        return
            except Exception as exc:  # noqa: BLE001 - a bug of the fuzzer, not the service: said, and raised
                tally.harness_errors.append(f"{type(exc).__name__}: {exc}")
                raise

    threads = [threading.Thread(target=client, name=f"fuzz-client-{n}") for n in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.monotonic() - start
    after = watched_processes(target)
    lost = {pid: role for pid, role in before.items() if pid not in after}
    replaced = {pid: role for pid, role in after.items() if pid not in before}
    return FuzzResult(inputs, tally, seconds, lost, replaced, len(before), readiness(target.url))


def operation(probe: Probe) -> str:
    """The operation a probe calls ("POST /layout-parsing"), or "other" for a method or
    path the API does not have."""
    name = f"{probe.method} {probe.path.split('?')[0]}"
    return name if name in OPERATIONS else "other method or path"


def locked(source: Iterator[Probe], lock: threading.Lock) -> Iterator[Probe]:
    """The shared inputs, one at a time to whichever client asks (made under the lock:
    a mutant takes milliseconds)."""
    while True:
        with lock:
            probe = next(source, None)
        if probe is None:
            return
        yield probe


def watched_processes(target: Target) -> dict[int, str]:
    """pid → role of each process that must outlive the run: the gateway's master and
    workers, tritonserver and its Python stubs (not the render workers, which are
    replaced by design when a page passes a limit)."""
    parents = parent_map()
    found: dict[int, str] = {}
    if target.gateway_pid is not None:
        found[target.gateway_pid] = "gateway master"
        found.update({pid: "gateway worker" for pid, ppid in parents.items() if ppid == target.gateway_pid})
    if target.triton_pid is not None:
        found[target.triton_pid] = "tritonserver"
        for pid in descendants(target.triton_pid, parents):
            model = stub_model(read_cmdline(pid))
            if model:
                found[pid] = f"stub:{model}"
    return found


def readiness(url: str) -> int | None:
    """``/health/ready``'s status now (None: no answer)."""
    try:
        return httpx.get(f"{url}/health/ready", timeout=15.0).status_code
    except httpx.HTTPError:
        return None
