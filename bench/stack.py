"""The whole service for a benchmark, on 127.0.0.1 free ports, always stopped afterwards:
the VLM stand-in, a real tritonserver running model_repository/ with the stand-in
PP-DocLayoutV3 (the real PaddleX loading and inference path, 8 boxes per page of which 5
go to the VLM), and the gateway under gunicorn.

    with BenchStack(StackConfig(vlm_latency=0.2), work_dir) as stack:
        stack.gateway.url, stack.triton.grpc_url, stack.simulator.root

It also says which process is which (``processes``), for the CPU accounting of
``bench.load``, and reads what those processes expose: ``/proc/<pid>/stat`` CPU times and
Prometheus text.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from scripts.gateway_local import GatewayServer
from scripts.processes import LaunchError
from scripts.triton_local import TritonServer
from vlmsim import SimulatorProcess

REPO_ROOT = Path(__file__).resolve().parent.parent
LAYOUT_MODEL_NAME = "PP-DocLayoutV3"
# Seconds tritonserver gets to stop before it is killed. The results are in by then, so a
# graceful unload protects nothing, and a run should not wait on a stop that hangs
# (it stops in about 2 s; the regions of a killed one are removed, see triton_local).
TRITON_STOP_TIMEOUT = 5.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class StackConfig:
    """What a benchmark may change about the service; everything else is the defaults of
    ``docparse/settings.py``."""

    vlm_latency: float = 0.2  # seconds per VLM call in the stand-in
    vlm_slots: int = 64  # the stand-in's running calls at once (vLLM --max-num-seqs)
    vlm_max_concurrency: int | None = None  # HPS_VLM_MAX_CONCURRENCY; None: vlm_slots
    gateway_workers: int = 2
    max_concurrent_requests: int = 64  # HPS_MAX_CONCURRENT_REQUESTS, per gateway worker
    settings: dict[str, str] = field(default_factory=dict)  # more HPS_* for Triton and gateway
    # Stage marks of every request (HPS_TRACE_FILE, docparse/tracing.py) in <work dir>/marks.log,
    # for bench.stages. A mark is one short write (a few µs; ~25 per page with layout on).
    trace: bool = False
    # ---- SIMULATOR OPTIONS ------------------------------------------------------------
    # The one place where extra options reach the VLM stand-in: passed as they are, as
    # keyword arguments, to SimulatorProcess(latency=..., max_concurrency=..., **these)
    # (e.g. a calibrated continuous-batching timing profile).
    simulator_options: dict[str, Any] = field(default_factory=dict)

    def service_env(self, vlm_url: str, layout_dir: Path, trace_file: Path | None = None) -> dict[str, str]:
        """The HPS_* settings Triton and the gateway run with (recorded in the results)."""
        env = {
            "HPS_LAYOUT_MODEL_DIR": str(layout_dir),
            "HPS_LAYOUT_MODEL_NAME": LAYOUT_MODEL_NAME,
            "HPS_VLM_URL": vlm_url,
            "HPS_VLM_MAX_CONCURRENCY": str(self.vlm_max_concurrency or self.vlm_slots),
            "HPS_MAX_CONCURRENT_REQUESTS": str(self.max_concurrent_requests),
            "HPS_LOG_LEVEL": "WARNING",  # a log line per page would cost CPU we measure
        }
        if trace_file is not None:
            env["HPS_TRACE_FILE"] = str(trace_file)
        env.update(self.settings)
        return env


class BenchStack:
    """Simulator → tritonserver → gateway, started in that order, stopped in reverse."""

    def __init__(self, config: StackConfig, work_dir: Path) -> None:
        self.config = config
        self.work_dir = work_dir
        self.simulator: SimulatorProcess | None = None
        self.triton: TritonServer | None = None
        self.gateway: GatewayServer | None = None
        self.env: dict[str, str] = {}
        self.trace_file: Path | None = work_dir / "marks.log" if config.trace else None
        self._stop = ExitStack()

    def start(self) -> "BenchStack":
        self.work_dir.mkdir(parents=True, exist_ok=True)
        try:
            layout_dir = build_layout_model(self.work_dir / LAYOUT_MODEL_NAME)
            self.simulator = self._started(SimulatorProcess(
                latency=self.config.vlm_latency,
                max_concurrency=self.config.vlm_slots,
                log_path=self.work_dir / "vlm-simulator.log",
                **self.config.simulator_options,
            ))
            self.env = self.config.service_env(self.simulator.url, layout_dir, self.trace_file)
            self.triton = self._started(
                TritonServer(env=self.env, log_path=self.work_dir / "tritonserver.log", ready_timeout=180),
                stop_timeout=TRITON_STOP_TIMEOUT,
            )
            self.gateway = self._started(GatewayServer(
                env={**self.env, "HPS_TRITON_URL": self.triton.grpc_url},
                workers=self.config.gateway_workers,
                log_path=self.work_dir / "gateway.log",
            ))
        except BaseException:
            self.stop()
            raise
        return self

    def _started(self, server: Any, stop_timeout: float | None = None) -> Any:
        """Start ``server`` and make sure ``stop`` stops it (killed past ``stop_timeout``
        seconds, when given)."""
        if stop_timeout is None:
            self._stop.callback(server.stop)
        else:
            self._stop.callback(server.stop, stop_timeout)
        return server.start()

    def stop(self) -> None:
        self._stop.close()

    def __enter__(self) -> "BenchStack":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def describe(self) -> dict:
        """What the results record about the service."""
        return {
            "config": asdict(self.config),
            "env": self.env,
            "simulator": {"url": self.simulator.url if self.simulator else None},
            "logs": str(self.work_dir),
        }

    def processes(self) -> list[tuple[str, int]]:
        """(role, pid) of every process of the stack right now. Roles: ``gateway`` (the
        gunicorn master and its workers), ``tritonserver``, ``stub:<model>`` (a Triton
        Python backend stub, named by the model.py path on its command line),
        ``simulator``."""
        assert self.simulator and self.triton and self.gateway, "the stack is not started"
        parents = parent_map()
        found: list[tuple[str, int]] = []
        for root_role, root in (
            ("gateway", self.gateway.process.pid),
            ("tritonserver", self.triton.process.pid),
            ("simulator", self.simulator.process.pid),
        ):
            found.append((root_role, root))
            roles = {root: root_role}
            for pid in descendants(root, parents):  # parents before their children
                model = stub_model(read_cmdline(pid))
                parent_role = roles.get(parents.get(pid, root), root_role)
                # A stub's own processes (pdf_render's render workers) are that stub's work.
                roles[pid] = f"stub:{model}" if model else parent_role
                found.append((roles[pid], pid))
        return found


def explain_failure(exc: BaseException, work_dir: Path) -> int:
    """Say why a benchmark stopped (its stack did not start, or misbehaved while it was
    measured) and where the servers' logs are; the exit status, 1."""
    what = f"the service could not be started: {exc}" if isinstance(exc, LaunchError) else str(exc)
    print(f"error: {what}\n(server logs: {work_dir})", file=sys.stderr)
    return 1


def build_layout_model(out: Path) -> Path:
    """The stand-in PP-DocLayoutV3 in ``out`` (built once; reused when it is there). Built
    in a child process so Paddle never loads into the load generator."""
    if (out / "inference.yml").exists():
        return out
    command = [sys.executable, "-m", "testkit.tiny_doclayout", str(out), LAYOUT_MODEL_NAME]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise LaunchError(f"building the stand-in layout model failed:\n{done.stderr[-3000:]}")
    return out


# --- reading the processes -------------------------------------------------------------------


def parse_proc_stat(text: str) -> tuple[int, float]:
    """(parent pid, user + system CPU seconds) from the text of ``/proc/<pid>/stat``.
    The command name (field 2) may hold spaces and parentheses, so fields are counted
    from its closing parenthesis: then state, ppid, …, utime (14), stime (15)."""
    rest = text[text.rindex(")") + 2:].split()
    ppid, utime, stime = int(rest[1]), int(rest[11]), int(rest[12])
    return ppid, (utime + stime) / CLOCK_TICKS


def read_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of ``pid`` (all its threads); None once it has gone."""
    try:
        return parse_proc_stat(Path(f"/proc/{pid}/stat").read_text())[1]
    except (OSError, ValueError, IndexError):
        return None


def parse_machine_stat(text: str) -> float:
    """Busy CPU seconds of the whole machine, all cores, since boot, from the text of
    ``/proc/stat``: its ``cpu`` line's user, nice, system, irq, softirq and steal ticks
    (guest time is already in user; idle and iowait are not busy)."""
    fields = text.split("\n", 1)[0].split()
    assert fields[0] == "cpu", "the first line of /proc/stat sums every core"
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(value) for value in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def read_machine_busy_seconds() -> float | None:
    """Busy CPU seconds of the whole machine so far (every process, this stack's or
    not); None where /proc/stat cannot be read."""
    try:
        return parse_machine_stat(Path("/proc/stat").read_text())
    except (OSError, ValueError, AssertionError):
        return None


def read_cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def parent_map() -> dict[int, int]:
    """pid → parent pid of every process now."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = parse_proc_stat((entry / "stat").read_text())[0]
            except (OSError, ValueError, IndexError):
                continue  # gone meanwhile
    return parents


def descendants(root: int, parents: dict[int, int]) -> list[int]:
    """Every process below ``root`` (children, their children, …), each after its parent."""
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = [], sorted(children.get(root, []))
    while todo:
        pid = todo.pop(0)
        found.append(pid)
        todo.extend(sorted(children.get(pid, [])))
    return found


def stub_model(cmdline: list[str]) -> str | None:
    """The model a Triton Python stub serves: its command line starts with the stub and
    the path ``<repository>/<model>/<version>/model.py``."""
    if not cmdline or not cmdline[0].endswith("triton_python_backend_stub"):
        return None
    script = next((Path(arg) for arg in cmdline[1:] if arg.endswith(".py")), None)
    return script.parent.parent.name if script else "unknown"


def fetch_text(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode()


def prometheus_samples(text: str) -> dict[tuple[str, frozenset], float]:
    """(sample name, labels) → value of a Prometheus text exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }

