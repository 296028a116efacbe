"""The benchmark's parts one by one: percentiles, arrival schedules, /proc and metrics
parsing, the gateway sender against a real scripted event-stream server, a point's
numbers, the report files and the command line. (tests/e2e/test_bench_smoke.py runs it
whole, against the real stack.)"""

from __future__ import annotations

import itertools
import json
import os
import random

import aiohttp
import numpy as np
import pytest

from bench import load, report
from bench.loadgen import ClosedLoop, OpenLoop, arrival_offsets
from bench.options import parse_options
from bench.overhead import gateway_share, union_seconds
from bench.point import summarize_point
from bench.sampling import Snapshot, metric_total
from bench.senders import GatewaySender, RequestFailed, RequestRecord, sse_events
from bench.stack import descendants, parse_proc_stat, prometheus_samples, read_cpu_seconds, stub_model
from tests.support.event_stream import AWKWARD, AWKWARD_EVENTS, EventStreamServer, Stream, sse


def test_percentiles_interpolate_like_numpy():
    values = [0.3, 0.1, 0.7, 0.2, 0.9, 0.4, 0.5]
    for q in (0, 25, 50, 95, 99, 100):
        assert report.percentile(values, q) == pytest.approx(np.percentile(values, q))
    assert report.percentile([], 50) is None
    assert report.distribution([2.0]) == {"n": 1, "mean": 2.0, "p50": 2.0, "p95": 2.0, "p99": 2.0, "max": 2.0}
    assert report.distribution([])["p50"] is None


def test_uniform_arrivals_are_evenly_spaced():
    offsets = list(itertools.islice(arrival_offsets(4.0, "uniform", random.Random(0)), 5))
    assert offsets == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])


def test_poisson_arrivals_have_the_asked_mean_gap_and_repeat_with_the_seed():
    def first(n: int) -> list[float]:
        return list(itertools.islice(arrival_offsets(2.0, "poisson", random.Random(7)), n))

    offsets = first(20_000)
    gaps = np.diff(offsets)
    assert offsets[0] == 0.0 and (gaps >= 0).all()
    assert gaps.mean() == pytest.approx(0.5, rel=0.05)
    assert gaps.std() == pytest.approx(0.5, rel=0.05)  # exponential: std = mean
    assert first(10) == offsets[:10]
    with pytest.raises(ValueError):
        next(arrival_offsets(0, "poisson", random.Random(0)))


def test_proc_stat_of_this_process():
    ppid, cpu = parse_proc_stat(open(f"/proc/{os.getpid()}/stat").read())
    assert ppid == os.getppid() and cpu >= 0
    before = read_cpu_seconds(os.getpid())
    for _ in range(200):  # bounded: a few seconds of work at most; one clock tick is 10 ms
        sum(i * i for i in range(200_000))
        if read_cpu_seconds(os.getpid()) > before:
            break
    assert read_cpu_seconds(os.getpid()) > before
    assert read_cpu_seconds(2**22 + 1) is None  # above pid_max: no such process


def test_proc_stat_with_spaces_and_parentheses_in_the_command_name():
    ticks = os.sysconf("SC_CLK_TCK")
    fields = ["S", "42"] + ["0"] * 9 + [str(3 * ticks), str(ticks)] + ["0"] * 30
    assert parse_proc_stat(f"1234 (odd ) name) {' '.join(fields)}") == (42, 4.0)


def test_descendants_and_stub_models():
    parents = {10: 1, 11: 10, 12: 10, 13: 11, 20: 1}
    assert descendants(10, parents) == [11, 12, 13]
    assert descendants(20, parents) == []
    stub = ["/tmp/b/python/triton_python_backend_stub", "/repo/model_repository/pdf_render/1/model.py", "shm"]
    assert stub_model(stub) == "pdf_render"
    assert stub_model(["/usr/bin/python", "-m", "gunicorn"]) is None


def test_counters_are_found_with_or_without_their_total_suffix():
    samples = prometheus_samples(
        "# TYPE nv_inference_exec_count counter\n"
        'nv_inference_exec_count{model="pdf_render",version="1"} 3\n'
        'nv_inference_exec_count{model="layout_detection",version="1"} 4\n'
        "# TYPE vllm:num_requests_running gauge\n"
        'vllm:num_requests_running{model_name="glm-ocr"} 5\n'
    )
    assert metric_total(samples, "nv_inference_exec_count") == 7
    assert metric_total(samples, "nv_inference_exec_count", model="pdf_render") == 3
    assert metric_total(samples, "vllm:num_requests_running") == 5
    assert metric_total(samples, "missing") is None


def test_union_of_vlm_calls_counts_overlaps_once():
    assert union_seconds([]) == 0
    assert union_seconds([(0, 2), (1, 3), (5, 6), (5.5, 5.7)]) == pytest.approx(4.0)


async def test_sse_events_are_named_span_lines_and_an_unfinished_last_one_is_dropped():
    with EventStreamServer(AWKWARD) as server:
        async with aiohttp.ClientSession() as http, http.post(server.url, data=b"") as response:
            assert [event async for event in sse_events(response)] == AWKWARD_EVENTS


async def sent_through_the_gateway_sender(*pieces: bytes, content_type: str = "text/event-stream") -> list[dict]:
    with EventStreamServer(Stream(pieces, content_type=content_type)) as server:
        sender = GatewaySender(server.url, "stream", timeout=30)
        try:
            return [event async for event in sender.events({"logId": "t"})]
        finally:
            await sender.aclose()


async def test_the_gateway_sender_yields_the_events_and_fails_on_an_error_event():
    page, final = {"type": "page", "pageIndex": 0}, {"type": "final"}
    assert await sent_through_the_gateway_sender(sse("page", json.dumps(page)), sse("final", json.dumps(final))) == [
        page, final
    ]

    error = {"errorCode": 504, "errorMsg": "took too long"}
    with pytest.raises(RequestFailed) as failed:
        await sent_through_the_gateway_sender(sse("page", json.dumps(page)), sse("error", json.dumps(error)))
    assert (failed.value.kind, failed.value.message) == ("stream error 504", "took too long")

    with pytest.raises(RequestFailed) as failed:
        await sent_through_the_gateway_sender(b"<html></html>", content_type="text/html")
    assert failed.value.kind == "SSEError" and "text/html" in failed.value.message


def snapshot(clock: float, cpu: dict, succeeded: int, busy: float | None = None) -> Snapshot:
    stats = {"succeeded": succeeded, "max_concurrency": 8}
    if busy is not None:
        stats.update(sim_busy_slot_seconds_total=busy, sim_max_num_seqs=8)
    metrics = {("nv_inference_exec_count_total", frozenset({("model", "layout_detection")})): clock,
               ("nv_inference_compute_infer_duration_us_total", frozenset({("model", "layout_detection")})):
                   clock * 1e6}
    return Snapshot(clock, cpu, stats, {}, metrics)


def fixed_point(busy: tuple[float, float] | None = None) -> dict:
    """A point from fixed inputs: a 10 s window, two good two-page requests and a 503."""
    timings = {"render": 0.1, "layout": 0.2, "recognition": 1.0, "assemble": 0.05, "total": 1.2,
               "crop_cpu": 0.04, "assemble_cpu": 0.02}
    records = [
        RequestRecord("a", 100.0, 100.0, 102.0, [(101.0, 5), (102.0, 5)], timings),
        RequestRecord("b", 104.0, 104.5, 106.0, [(105.0, 5), (106.0, 4)], timings),
        RequestRecord("c", 107.0, 107.0, 107.1, [], None, RequestFailed("HTTP 503", "busy")),
    ]
    roles = [("gateway", 1), ("stub:pdf_render", 2), ("stub:layout_detection", 3),
             ("stub:layout-parsing-stream", 4), ("loadgen", 5)]
    before = snapshot(100.0, {key: 10.0 for key in roles}, 50, busy and busy[0])
    after = snapshot(110.0, {(role, pid): 10.0 + 0.4 * pid for role, pid in roles}, 69, busy and busy[1])
    samples = [(4.0, 0.0), (2.0, 1.0)]
    return summarize_point(OpenLoop(0.5, "poisson", 8), records, 100.0, 110.0, before, after, samples)


def test_a_point_counts_pages_regions_errors_and_cpu_per_page():
    point = fixed_point()
    assert point["pages"] == 4 and point["pages_per_s"] == pytest.approx(0.4)
    assert point["regions"]["from_results"] == 19 and point["regions_per_s"] == pytest.approx(1.9)
    assert point["regions"]["simulator_succeeded_calls"] == 19
    assert point["requests"] == {"ok": 2, "failed": 1}
    assert point["errors"] == {"HTTP 503": {"count": 1, "example": "busy"}}
    assert point["latency_s"]["p50"] == pytest.approx(1.75)
    assert point["first_page_s"]["max"] == pytest.approx(1.0)
    assert point["queued_requests"] == 1  # request b was sent 0.5 s after it was due
    cpu = point["cpu"]["by_role"]
    assert cpu["stub:pdf_render"]["per_page_s"] == pytest.approx(0.8 / 4)
    stages = point["stages"]
    assert stages["render"]["cpu_per_page_s"] == pytest.approx(0.2)
    assert stages["layout"]["cpu_per_page_s"] == pytest.approx(0.3)
    assert stages["crop"]["cpu_per_page_s"] == pytest.approx(0.08 / 4)
    assert stages["assembly"]["cpu_per_page_s"] == pytest.approx(0.04 / 4)
    assert stages["orchestration_other"]["cpu_per_page_s"] == pytest.approx((1.6 - 0.12) / 4)
    assert point["triton_compute"]["layout_detection"]["compute_ms_per_page"] == pytest.approx(10e3 / 4)
    utilisation = point["vlm_utilisation"]
    assert utilisation["value"] == pytest.approx(3.0 / 8) and "sampled" in utilisation["method"]


def test_vlm_utilisation_uses_the_busy_slot_counter_when_there_is_one():
    utilisation = fixed_point(busy=(100.0, 140.0))["vlm_utilisation"]
    assert utilisation["value"] == pytest.approx(40.0 / (10 * 8))
    assert utilisation["method"].startswith("sim_busy_slot_seconds_total")


def fixed_results() -> dict:
    closed = dict(fixed_point(), load=ClosedLoop(4).describe())
    overhead_row = {"target": "gateway", "document": "image, layout off", "requests": 3, "failed": 0, "raw": []}
    for key in ("end_to_end_s", "render_s", "layout_s", "vlm_s", "overhead_s", "crop_cpu_s"):
        overhead_row[key] = report.distribution([0.1, 0.2, 0.3])
    return {
        "schema": "docparse-bench/1",
        "run": {"started": "2026-01-01T00:00:00+00:00", "target": "gateway", "route": "stream",
                "documents": [{"name": "pdf:2", "fileType": 0}], "budget": "10 s", "warmup_s": 3.0},
        "machine": {"cpus": 2, "cpu_model": "Test CPU", "loadavg_before": [0.5, 0, 0], "loadavg_after": [1.5, 0, 0]},
        "git": {"commit": "0123456789abcdef", "dirty": False},
        "stack": {"config": {"vlm_latency": 0.2, "vlm_slots": 64}},
        "points": [closed, dict(closed, load=ClosedLoop(16).describe())],
        "overhead": [overhead_row, dict(overhead_row, target="triton")],
        "gateway_share_s": gateway_share([overhead_row, dict(overhead_row, target="triton")]),
    }


def test_reports_are_written_from_a_results_json(tmp_path):
    results = json.loads(json.dumps(fixed_results()))  # exactly what results.json holds
    paths = report.write_reports(results, tmp_path)
    assert [p.name for p in paths] == ["results.json", "results.md", "results.png"]
    assert json.loads(paths[0].read_text()) == results
    text = paths[1].read_text()
    assert "| c=4 | 0.40 | 1.90 | 2/1 | 1750/1975/1995 |" in text
    assert "| 1 (450) | HTTP 503: 1 |" in text  # one request of three waited 0.5 s at the client
    assert "| c=16 |" in text and "HTTP 503: 1" in text
    assert "| gateway | image, layout off | 3 | 200 |" in text
    assert "image, layout off: 0 ms" in text
    assert paths[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report.main([str(paths[0])]) == 0  # and again from the saved file alone


@pytest.mark.parametrize("argv, message", [
    (["--concurrency", "1,x"], "comma-separated list"),
    (["--concurrency", "0"], "must be > 0"),
    (["--concurrency", "2", "--rate", "1"], "not both"),
    (["--duration", "5", "--requests", "3"], "not both"),
    (["--document", "pdf:0"], "page count"),
    (["--document", "/no/such/file.pdf"], "no such file"),
    (["--set", "VLM_URL"], "HPS_NAME=VALUE"),
    (["--target", "triton", "--route", "unary"], "gateway route"),
])
def test_bad_command_lines_get_a_message_not_a_traceback(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        load.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_command_line_defaults():
    options = parse_options([])
    assert options.loads == [ClosedLoop(1), ClosedLoop(4), ClosedLoop(16), ClosedLoop(64)]
    assert options.window.duration == 10.0 and options.window.requests is None
    assert [d.name for d in options.documents] == ["pdf:2"] and options.documents[0].file_type == 0
    assert options.overhead_document.name == "image" and options.overhead_document.file_type == 1
    assert parse_options(["--overhead-document", "pdf:1"]).overhead_document.name == "pdf:1"
    rate = parse_options(["--rate", "0.5,2", "--arrival", "uniform", "--requests", "7"])
    assert rate.loads == [OpenLoop(0.5, "uniform", 256), OpenLoop(2.0, "uniform", 256)]
    assert rate.window.requests == 7 and rate.window.duration is None

