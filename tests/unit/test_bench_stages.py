"""bench/stages.py: a request's time cut into stages from the marks of every process."""

from __future__ import annotations

import pytest

from bench.stages import Mark, breakdown, intervals, read_marks, vlm_marks
from docparse import tracing


def marks_of(log_id: str, timeline: list[tuple[float, str]]) -> list[Mark]:
    return [Mark(at, log_id, stage) for at, stage in timeline]


ONE_REGION = [
    (100.000, "client.sent"),
    (100.002, "orchestrator.received"),
    (100.003, "render.requested"),
    (100.040, "page.rendered"),
    (100.050, "vlm.image_ready"),
    (100.051, "vlm.request_sent"),
    (100.053, "vlm_server.received"),
    (100.253, "vlm_server.finished"),
    (100.255, "vlm.answer_received"),
    (100.256, "orchestrator.sent.page"),
    (100.257, "client.received.page"),
    (100.258, "client.done"),
]


def test_intervals_add_up_to_the_end_to_end_time_and_go_to_the_stage_that_ends_them():
    spent = intervals(marks_of("a", ONE_REGION))
    assert sum(spent.values()) == pytest.approx(0.258)
    assert spent["page.rendered"] == pytest.approx(0.037)
    assert spent["vlm.image_ready"] == pytest.approx(0.010)
    assert spent["vlm_server.finished"] == pytest.approx(0.200)
    assert "client.sent" not in spent  # the start ends no interval


def test_marks_in_any_order_are_put_in_time_order():
    shuffled = list(reversed(marks_of("a", ONE_REGION)))
    assert intervals(shuffled) == pytest.approx(intervals(marks_of("a", ONE_REGION)))


def test_a_stage_reached_several_times_gets_the_sum():
    spent = intervals(marks_of("a", [(0.0, "client.sent"), (1.0, "vlm.image_ready"),
                                     (1.5, "vlm.request_sent"), (3.0, "vlm.image_ready")]))
    assert spent["vlm.image_ready"] == pytest.approx(2.5)


def test_overhead_leaves_out_render_layout_and_the_vlm_and_only_asked_requests_count():
    marks = marks_of("a", ONE_REGION) + marks_of("b", [(t + 1, s) for t, s in ONE_REGION])
    marks += marks_of("other", [(0.0, "client.sent"), (9.0, "client.done")])
    result = breakdown(marks, ["a", "b", "missing"])
    assert result["requests"] == 2
    assert result["end_to_end_s"]["p50"] == pytest.approx(0.258)
    assert result["overhead_s"]["p50"] == pytest.approx(0.258 - 0.037 - 0.200)
    stages = {s["stage"]: s for s in result["stages"]}
    assert stages["page.rendered"]["excluded"] and not stages["vlm.image_ready"]["excluded"]
    assert "page.layout_detected" not in stages  # never reached: no row


def test_trace_file_lines_are_read_back_and_bad_lines_skipped(tmp_path):
    path = tmp_path / "marks.log"
    tracing.configure(str(path))
    try:
        tracing.mark("gateway.received", "req-1", at=12.5)
        tracing.mark("gateway.validated", "req-1")
    finally:
        tracing.stop()
    tracing.mark("after.stop", "req-1")  # off again: not written
    with path.open("a") as extra:
        extra.write("garbage\nnot-a-time 1 req-1 stage\n")
    marks = read_marks(path)
    assert [(m.log_id, m.stage) for m in marks] == [("req-1", "gateway.received"), ("req-1", "gateway.validated")]
    assert marks[0].at == 12.5 and marks[1].at > 12.5


def test_vlm_calls_become_marks_and_unfinished_calls_are_left_out():
    calls = [{"request_id": "a", "received": 1.0, "finished": 1.2},
             {"request_id": "a", "received": 1.1, "finished": None}]
    assert [(m.at, m.stage) for m in vlm_marks(calls)] == [(1.0, "vlm_server.received"), (1.2, "vlm_server.finished")]
