"""``python -m bench.load`` end to end, briefly: it starts its own stack (VLM stand-in,
tritonserver, gateway), measures one point at concurrency 2 and writes its three files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.triton

REPO_ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT = 180  # seconds: a bound for a run that takes about 30 s, never a measurement


def test_bench_load_writes_results_with_pages_and_no_errors(tmp_path):
    out = tmp_path / "results"
    command = [
        sys.executable, "-m", "bench.load", "--concurrency", "2", "--duration", "2", "--warmup", "0.5",
        "--document", "pdf:1", "--vlm-latency", "0.02", "--overhead-requests", "0", "--out", str(out),
    ]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert done.returncode == 0, done.stderr[-3000:]

    assert {p.name for p in out.iterdir()} >= {"results.json", "results.md", "results.png"}
    results = json.loads((out / "results.json").read_text())
    (point,) = results["points"]
    assert point["load"] == {"mode": "closed", "concurrency": 2}
    assert point["pages"] > 0 and point["regions"]["from_results"] == 5 * point["pages"]
    assert point["requests"]["failed"] == 0 and point["errors"] == {}
    assert point["stages"]["crop"]["cpu_per_page_s"] > 0
    assert "| c=2 |" in (out / "results.md").read_text()
    assert (out / "results.png").read_bytes()[:4] == b"\x89PNG"
