"""``bench.batch``'s parts one by one: the images and the multipart body it sends, its
sender against a real scripted HTTP server, the numbers of a point, the VLM's bound and
the zero-overhead utilisation, the report, the command line; and what it added to the
shared parts (staggered clients, the machine's busy CPU). (tests/e2e/test_bench_smoke.py
runs it whole, against the real stack.)"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import io
import json
import os
import time

import pytest
from PIL import Image

from bench import batch
from bench.batch_report import IdealLoad, ideal_utilisation, markdown, point_summary, vlm_bound, vlm_model
from bench.loadgen import ClosedLoop, generate
from bench.sampling import Snapshot, cpu_summary
from bench.senders import RequestFailed, RequestRecord
from bench.stack import parse_machine_stat, read_machine_busy_seconds
from tests.support.scripted_http import Reply, ScriptedServer
from vlmsim.profiles import PROFILES, BatchingParams


def parts_of(body: bytes, boundary: str) -> list[tuple[str, str | None, bytes]]:
    """(field, file name, content) of each part, read back by the standard library."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n".encode() + body)
    return [(part.get_param("name", header="content-disposition"), part.get_filename(),
             part.get_payload(decode=True)) for part in message.iter_parts()]


def test_the_multipart_body_reads_back_as_its_fields_and_files():
    files = [("images", "a.png", b"\x89PNG\r\n--x", "image/png"), ("images", "b.png", b"", "image/png")]
    body = batch.multipart_body({"task": "table", "logId": "L1"}, files, "b0und")
    assert parts_of(body, "b0und") == [("task", None, b"table"), ("logId", None, b"L1"),
                                       ("images", "a.png", b"\x89PNG\r\n--x"), ("images", "b.png", b"")]
    assert body.endswith(b"--b0und--\r\n")


def test_the_crops_are_the_test_pages_blocks_and_the_page_is_whole():
    assert batch.crop_box("text", 1191, 1684) == (119, 253, 1072, 505)
    text = batch.batch_image("crop", "text")
    assert (text.width, text.height) == (953, 252) and Image.open(io.BytesIO(text.data)).size == (953, 252)
    assert batch.batch_image("crop", "formula").height < text.height < batch.batch_image("crop", "table").height
    page = batch.batch_image("page", "text")
    assert (page.width, page.height) == (1191, 1684) and "953x252 PNG" in text.describe()


async def test_the_sender_posts_the_batch_and_yields_each_image_then_the_final():
    answer = {"results": [{"index": 0, "text": "a"}, {"index": 1, "error": "not an image", "errorCode": 422}],
              "total_time": 0.1, "throughput": "20.0 imgs/s", "logId": "L"}
    image = batch.BatchImage("dot", b"\x89PNG-ish", 1, 1)
    async with ScriptedServer(Reply(json=answer), Reply(413, json={"errorCode": 413, "errorMsg": "too many"})) as server:
        sender = batch.BatchSender(server.url.removesuffix("/v1/"), 30, image, 2, "formula")
        try:
            events = [event async for event in sender.events({"logId": "L7"})]
            with pytest.raises(RequestFailed) as failed:
                [event async for event in sender.events({"logId": "L8"})]
        finally:
            await sender.aclose()
    assert [e["type"] for e in events] == ["page", "page", "final"]
    assert [batch.read_without_error(e["result"]) for e in events[:2]] == [1, 0]
    assert (failed.value.kind, failed.value.message) == ("HTTP 413", "too many")
    request = server.requests[0]
    assert request.path == "/api/ocr/batch"
    boundary = request.headers["content-type"].split("boundary=")[1]
    assert parts_of(request.body, boundary) == [("task", None, b"formula"), ("logId", None, b"L7"),
                                                ("images", "image-0.png", b"\x89PNG-ish"),
                                                ("images", "image-1.png", b"\x89PNG-ish")]


async def test_staggered_clients_start_one_after_the_other():
    seen: list[tuple[float, int]] = []  # (seconds from the start, requests in flight then)
    in_flight = 0
    stop = asyncio.Event()

    async def issue(scheduled: float) -> RequestRecord:
        nonlocal in_flight
        in_flight += 1
        seen.append((scheduled - begin, in_flight))
        await asyncio.sleep(0.05)
        in_flight -= 1
        return RequestRecord("r", scheduled, scheduled, time.perf_counter())

    begin = time.perf_counter()
    generator = asyncio.create_task(generate(ClosedLoop(3, stagger=0.3), issue, lambda record: None, stop))
    await asyncio.sleep(0.9)
    stop.set()
    await generator

    def most(start: float, end: float) -> int:
        return max(count for at, count in seen if start <= at < end)

    assert (most(0.0, 0.25), most(0.35, 0.55), most(0.65, 0.9)) == (1, 2, 3)
    assert ClosedLoop(3).describe() == {"mode": "closed", "concurrency": 3}
    assert ClosedLoop(3, 0.5).describe()["stagger_s"] == 0.5


def test_the_machines_busy_cpu_leaves_out_idle_and_iowait():
    ticks = os.sysconf("SC_CLK_TCK")
    text = f"cpu  {3 * ticks} {ticks} {ticks} {50 * ticks} {7 * ticks} 0 {ticks} 0 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n"
    assert parse_machine_stat(text) == 6.0
    assert read_machine_busy_seconds() > 0


def test_the_cpu_summary_says_what_ran_outside_the_stack():
    before = Snapshot(0.0, {("gateway", 1): 1.0, ("loadgen", 2): 1.0}, {}, {}, {}, machine_busy=100.0)
    after = Snapshot(10.0, {("gateway", 1): 4.0, ("loadgen", 2): 2.0}, {}, {}, {}, machine_busy=115.0)
    cpu = cpu_summary(before, after, 8)
    assert cpu["total_s"] == 4.0 and cpu["machine_busy_s"] == 15.0 and cpu["outside_stack_s"] == 11.0
    unknown = cpu_summary(Snapshot(0.0, {}, {}, {}, {}), Snapshot(1.0, {}, {}, {}, {}), 0)
    assert unknown["machine_busy_s"] is None and unknown["outside_stack_s"] is None


def a_point(utilisation: float = 0.96) -> dict:
    """A bench.point point of 10 s: 3 batches of 4 answered (12 images, 11 read), one failed."""
    cpu = {"by_role": {"gateway": {"cpu_s": 0.6, "processes": 3, "per_page_s": 0.05}},
           "total_s": 12.0, "total_per_page_s": 1.0, "machine_busy_s": 18.0, "outside_stack_s": 6.0}
    return {
        "clients": 2, "window_s": 10.0, "pages": 12, "requests": {"ok": 3, "failed": 1},
        "regions": {"from_results": 11, "simulator_succeeded_calls": 13},
        "errors": {"HTTP 503": {"count": 1, "example": "busy"}},
        "latency_s": {"n": 3, "mean": 2.0, "p50": 2.0, "p95": 2.9, "p99": 3.0, "max": 3.0},
        "vlm_utilisation": {"value": utilisation, "mean_running": 61.0, "mean_waiting": 0.0,
                            "method": "sim_busy_slot_seconds_total delta / (window × sim_max_num_seqs)"},
        "cpu": cpu,
    }


def test_a_points_summary_counts_images_errors_and_cores():
    summary = point_summary(a_point(), 4, 0.99)
    assert summary["images_per_s"] == pytest.approx(1.1) and summary["vlm_calls_per_s"] == pytest.approx(1.3)
    assert summary["images_read"] == 11 and summary["image_errors"] == 1
    assert summary["batches"] == {"ok": 3, "failed": 1, "images_each": 4}
    assert summary["batch_latency_s"]["p95"] == 2.9 and summary["target_met"] is True
    assert summary["stack_cores"] == 1.2 and summary["machine_busy_cores"] == 1.8
    assert summary["other_cores"] == pytest.approx(0.6) and summary["ideal_utilisation"] == 0.99
    assert summary["cpu_per_image_s"] == {"gateway": 0.05}
    assert point_summary(a_point(0.9499), 4, None)["target_met"] is False


CALL = {"prompt": "Text Recognition:", "width": 952, "height": 252}


def test_the_vlm_bound_is_simulator_md_formula_for_the_image_sent():
    a40 = PROFILES["glm-ocr-a40"]
    bound = vlm_bound({"timing": "vllm", "profile": "glm-ocr-a40", "max_num_seqs": 64}, {}, CALL)
    tokens = 952 * 252 // 784 + 2 + 8
    assert bound["prompt_tokens"] == tokens == 316
    assert bound["images_per_s"] == pytest.approx(1 / (75e-6 * tokens + 100 * (3.0e-3 + 64 * 50e-6) / 64))
    fixed = vlm_bound({"timing": "fixed", "profile": None, "max_num_seqs": 64}, {"vlm_latency": 0.5}, CALL)
    assert fixed["images_per_s"] == pytest.approx(128) and "fixed timing" in fixed["assumes"]
    assert vlm_model({"timing": "vllm", "profile": "glm-ocr-a40"}, {}, CALL) == (a40, 316, "text")


def test_with_no_overhead_a_fixed_timing_vlm_stays_full_and_one_client_of_varied_calls_does_not():
    fixed = BatchingParams(0.0, 0.2, 0.0, 1, 1, 1, 0.0)
    assert ideal_utilisation(fixed, 64, 0, "text", IdealLoad(1, 128, batches=3)) == pytest.approx(1.0)
    assert ideal_utilisation(fixed, 64, 0, "text", IdealLoad(1, 96, batches=3)) == pytest.approx(0.75)

    a40 = PROFILES["glm-ocr-a40"]
    one, two, three = (ideal_utilisation(a40, 64, 316, "text", IdealLoad(clients, 128)) for clients in (1, 2, 3))
    assert 0.75 < one < 0.9 < two < three <= 1.0  # the last, longest images of a batch leave slots idle
    assert ideal_utilisation(a40, 64, 316, "text", IdealLoad(1, 128)) == one  # seeded: the same every time
    assert ideal_utilisation(a40, 64, 316, "text", IdealLoad(1, 512)) > 0.93  # bigger batches drain less often


def results_for_report() -> dict:
    point = dict(a_point(), summary=point_summary(a_point(), 128, 0.83))
    return {
        "run": {"started": "2026-12-01T14:00:00+00:00", "command": ["python", "-m", "bench.batch"], "slots": 64,
                "images": 128, "image": {"kind": "crop", "name": "text block of the test page", "width": 953,
                                         "height": 252, "bytes": 50_000},
                "task": "text", "stagger_s": 0.0, "duration_s": 30.0, "warmup_s": 3.0, "target_utilisation": 0.95},
        "machine": {"cpus": 2, "cpu_model": "Test CPU", "loadavg_before": [0.5, 0, 0], "loadavg_after": [1.5, 0, 0]},
        "git": {"commit": "0123456789abcdef", "dirty": False},
        "stack": {"config": {"vlm_latency": 0.0}},
        "simulator": {"timing": "vllm", "profile": "glm-ocr-a40", "max_num_seqs": 64,
                      "vlm_bound": vlm_bound({"timing": "vllm", "profile": "glm-ocr-a40", "max_num_seqs": 64}, {},
                                             CALL)},
        "points": [point],
    }


def test_the_report_is_written_from_a_results_json():
    report = markdown(json.loads(json.dumps(results_for_report())))
    assert "Batches of **128** images" in report and "the VLM got 952x252" in report
    assert "| 2 | **0.960** | yes | 0.830 | 1.1 | 1.3 | 3/1 | 2.00/2.90 | 1, HTTP 503: 1 batches | 61.0 / 0.0 |" in report
    assert "1.20 / 1.80 / 0.60" in report and "## CPU seconds per image, by process" in report


def test_command_line_defaults_and_refusals(capsys):
    args = batch.parse_args([])
    assert (args.slots, args.images, args.clients, args.vlm_profile, args.vlm_latency) == (64, 128, [1], "glm-ocr-a40", None)
    args = batch.parse_args(["--slots", "8", "--clients", "1,3", "--vlm-latency", "0.2", "--set", "HPS_X=1"])
    assert (args.images, args.clients, args.vlm_profile, args.settings) == (16, [1, 3], None, {"HPS_X": "1"})
    config = batch.stack_config(args, batch.BatchImage("x", b"12345", 1, 1))
    assert (config.vlm_slots, config.vlm_max_concurrency, config.vlm_latency) == (8, 8, 0.2)
    assert config.settings == {"HPS_MAX_BATCH_IMAGES": "16", "HPS_X": "1"} and config.simulator_options == {}
    huge = batch.stack_config(batch.parse_args(["--images", "1000"]), batch.BatchImage("x", b"1" * 200_000, 1, 1))
    assert int(huge.settings["HPS_MAX_BODY_BYTES"]) > 1000 * 200_000
    assert batch.stack_config(batch.parse_args([]), batch.BatchImage("x", b"", 1, 1)).simulator_options == {
        "profile": "glm-ocr-a40"}
    for argv, message in ((["--vlm-latency", "0.1", "--vlm-profile", "glm-ocr-a40"], "not both"),
                          (["--vlm-profile", "h100"], "known profiles"), (["--clients", "0"], "must be > 0"),
                          (["--stagger", "-1"], "must be >= 0"), (["--set", "X=1"], "HPS_NAME=VALUE")):
        with pytest.raises(SystemExit):
            batch.parse_args(argv)
        assert message in capsys.readouterr().err
