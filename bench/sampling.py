"""What the stack reports about a window: snapshots at its edges (CPU of every process
from /proc, the VLM stand-in's counters, Triton's metrics), the VLM's running requests
sampled during it, and what changed between the two snapshots per process, stage and
model; and waiting until the service is idle again."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx

from bench.stack import BenchStack, fetch_text, prometheus_samples, read_cpu_seconds, read_machine_busy_seconds

SAMPLE_EVERY = 0.2  # seconds between samples of the VLM's running requests
IDLE_TIMEOUT = 120.0  # seconds the service may take to become idle after the last response


@dataclass
class Snapshot:
    clock: float
    cpu: dict[tuple[str, int], float]  # (role, pid) -> CPU seconds so far
    vlm_stats: dict
    vlm_metrics: dict
    triton_metrics: dict
    machine_busy: float | None = None  # busy CPU seconds of the whole machine (/proc/stat)


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
        machine_busy=read_machine_busy_seconds(),
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
    machine = (after.machine_busy - before.machine_busy
               if after.machine_busy is not None and before.machine_busy is not None else None)
    return {"processes": processes, "by_role": by_role, "total_s": total,
            "total_per_page_s": total / pages if pages else None,
            "machine_busy_s": machine, "outside_stack_s": machine - total if machine is not None else None,
            "note": "loadgen is this process (clients, sampling, reading /proc); outside_stack_s: the "
                    "machine's busy CPU (/proc/stat) less the stack's and loadgen's: other work on the machine"}


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
