"""What a result was measured on: the machine, the versions of the packages that matter,
and the commit, written beside a benchmark's numbers so that they can be compared."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
VERSIONED = ("docparse-hps", "nvidia-pytriton", "tritonclient", "paddlepaddle", "paddlex", "fastapi",
             "gunicorn", "uvicorn", "httpx", "aiohttp", "grpcio", "numpy", "pillow", "pypdfium2", "matplotlib")


def machine_info() -> dict:
    def cpuinfo(key: str) -> str | None:
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith(key):
                    return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return None

    memory = None
    try:
        memory = int(Path("/proc/meminfo").read_text().split()[1]) / 2**20  # MemTotal kB -> GiB
    except (OSError, ValueError, IndexError):
        pass
    return {
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": cpuinfo("model name"),
        "memory_gib": memory,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }


def versions() -> dict[str, str | None]:
    found = {}
    for name in VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def git_state() -> dict:
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""

    return {"commit": git("rev-parse", "HEAD") or "unknown", "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def provenance(loadavg_before: tuple[float, float, float] | None = None) -> dict:
    """What a benchmark's results record beside their numbers: the machine (with its load
    average before the run, when given, and now, after it), the versions and the commit."""
    machine = {**machine_info(), "loadavg_after": os.getloadavg()}
    if loadavg_before is not None:
        machine["loadavg_before"] = loadavg_before
    return {"machine": machine, "versions": versions(), "git": git_state()}
