"""``python -m bench.load`` end to end, briefly: it starts its own stack (VLM stand-in,
tritonserver, gateway), measures one point at concurrency 2, the overhead with two
requests per case, and writes its three files."""

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
        "--document", "pdf:1", "--vlm-latency", "0.02", "--overhead-requests", "2", "--out", str(out),
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
    report = (out / "results.md").read_text()
    assert "| c=2 |" in report

    # The overhead, stage by stage: the gateway and the orchestrator wrote their marks.
    cases = {(o["target"], o["document"]): o for o in results["overhead"]}
    assert set(cases) == {(t, f"image, layout {s}") for t in ("gateway", "triton") for s in ("on", "off")}
    for (target, _), case in cases.items():
        assert case["failed"] == 0 and case["stages"]["requests"] == 2
        reached = {s["stage"] for s in case["stages"]["stages"]}
        assert {"orchestrator.received", "page.rendered", "vlm.image_ready", "vlm_server.finished",
                "orchestrator.sent.page", "client.received.page"} <= reached
        assert ("gateway.validated" in reached) == (target == "gateway")
        overhead = case["stages"]["overhead_s"]["p50"]
        assert 0 < overhead < case["stages"]["end_to_end_s"]["p50"]
    assert "page.layout_detected" in {s["stage"] for s in cases[("triton", "image, layout on")]["stages"]["stages"]}
    assert "## Where the time goes, stage by stage" in report
    assert (out / "results.png").read_bytes()[:4] == b"\x89PNG"


def test_bench_jobs_runs_a_long_job_and_compares_jobs_with_sync(tmp_path):
    """``python -m bench.jobs`` end to end, briefly: a 6-page job sampled as it runs, then
    one round of sync and jobs at concurrency 2; its three files."""
    out = tmp_path / "jobs"
    command = [
        sys.executable, "-m", "bench.jobs", "--pages", "6", "--sample", "0.2", "--vlm-latency", "0.02",
        "--compare-concurrency", "2", "--compare-pages", "1", "--compare-duration", "1", "--rounds", "1",
        "--warmup", "0.2", "--compare-vlm-latency", "0.02", "--out", str(out),
    ]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert done.returncode == 0, done.stderr[-3000:]

    assert {p.name for p in out.iterdir()} >= {"jobs.json", "jobs.md", "jobs.png"}
    results = json.loads((out / "jobs.json").read_text())
    (job,) = results["long_jobs"]
    assert job["job"]["status"] == "succeeded" and job["job"]["pagesDone"] == 6 and job["result_pages"] == 6
    assert [s["mark"] for s in job["samples"]][:1] == ["start"] and job["samples"][-1]["mark"] == "after result"
    processes = job["memory"]["processes"]
    names = {label.split(" [")[0] for label in processes}
    assert {"gateway master", "gateway worker", "tritonserver", "stub:layout-parsing-stream",
            "stub:layout_detection", "stub:pdf_render", "simulator"} <= names
    assert all(row["end_mib"] and row["peak_mib"] >= row["end_mib"] for row in processes.values())

    runs = results["comparison"]["runs"]
    assert [run["mode"] for run in runs] == ["sync", "jobs"]
    assert all(run["pages"] > 0 and run["requests"]["failed"] == 0 for run in runs)
    assert runs[1]["job_phases_s"]["jobs"] > 0 and results["comparison"]["summary"]["ratio"] > 0
    report = (out / "jobs.md").read_text()
    assert "## Long job 1" in report and "## Jobs against the sync route" in report
    assert (out / "jobs.png").read_bytes()[:4] == b"\x89PNG"


def test_bench_batch_keeps_the_vlm_busy_with_batches_and_reports_it(tmp_path):
    """``python -m bench.batch`` end to end, briefly: 4 VLM slots (the calibrated
    profile), two staggered clients sending batches of 8 text crops for a 1-s window;
    its two files. Most of its time is the stack's start and stop."""
    out = tmp_path / "batch"
    command = [
        sys.executable, "-m", "bench.batch", "--slots", "4", "--clients", "2", "--stagger", "0.2",
        "--duration", "1", "--warmup", "0", "--out", str(out),
    ]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert done.returncode == 0, done.stderr[-3000:]

    assert {p.name for p in out.iterdir()} >= {"batch.json", "batch.md"}
    results = json.loads((out / "batch.json").read_text())
    assert results["run"]["images"] == 8 and results["stack"]["env"]["HPS_MAX_BATCH_IMAGES"] == "8"
    assert results["stack"]["env"]["HPS_VLM_MAX_CONCURRENCY"] == "4" and results["simulator"]["max_num_seqs"] == 4
    assert results["simulator"]["profile"] == "glm-ocr-a40"
    # The 953x252 block fits the VLM's pixel budget: it goes as it was sent (issue #19).
    assert results["simulator"]["vlm_bound"]["image_in_vlm"] == "953x252"
    (point,) = results["points"]
    summary = point["summary"]
    assert point["load"] == {"mode": "closed", "concurrency": 2, "stagger_s": 0.2}
    assert summary["batches"]["failed"] == 0 and summary["image_errors"] == 0 and summary["batch_errors"] == {}
    assert point["pages"] == 8 * summary["batches"]["ok"] and summary["images_per_s"] > 0
    assert 0 < summary["vlm_utilisation"] <= 1.0 and 0 < summary["ideal_utilisation"] <= 1.0
    assert summary["cpu_per_image_s"]["gateway"] > 0 and summary["machine_busy_cores"] > 0
    report = (out / "batch.md").read_text()
    assert "Batches of **8** images" in report and "| 2 | **" in report
