"""``bench.fairness``'s parts that need no stack: its verdicts against issue #19's targets,
its report, and its command line's checks. (BENCHMARKS.md, "Fair scheduling", has its runs.)"""

from __future__ import annotations

import pytest

from bench import fairness


def phase(name: str, p50: float, utilisation: float | None = None) -> dict:
    found = {"phase": name, "latency_s": {"n": 20, "p50": p50, "p95": p50 * 1.2, "max": p50 * 1.5}}
    if utilisation is not None:
        found |= {"vlm_utilisation": {"value": utilisation}, "vlm_calls_per_s": 14.9}
    return found


def test_the_target_needs_both_the_latency_ratio_and_the_utilisation():
    alone, fast, slow, idle = fairness.summarize([
        phase("alone", 1.0), phase("under load (sync)", 1.4, 0.97),
        phase("under load (sync)", 4.7, 0.99), phase("under load (jobs)", 1.2, 0.90),
    ])
    assert "target_met" not in alone and alone["p50_vs_alone"] == 1.0
    assert (fast["p50_vs_alone"], fast["target_met"]) == (pytest.approx(1.4), True)
    assert (slow["p50_vs_alone"], slow["target_met"]) == (pytest.approx(4.7), False)
    assert idle["target_met"] is False  # fast, but the VLM was left idle


def traced(found: dict, waited: float, vlm_call: float) -> dict:
    found["stages"] = {"stages": [{"stage": "vlm.request_sent", "seconds": {"p50": waited}},
                                  {"stage": "vlm_server.finished", "seconds": {"p50": vlm_call}}]}
    return found


def test_the_report_has_a_row_per_phase_the_stages_and_the_floor_when_traced():
    phases = fairness.summarize([traced(phase("alone", 1.0), 0.001, 0.4),
                                 traced(phase("under load (sync)", 4.7, 0.99), 1.2, 2.8)])
    assert phases[1]["floor_s"] == pytest.approx(1.0 - 0.4 + 2.8)  # alone, its VLM call as long as under load
    run = {"slots": 16, "vlm_profile": "glm-ocr-a40", "small_document": "spec.pdf", "small_pages": "1",
           "big": 8, "big_document": "spec.pdf", "samples": 20}
    report = fairness.markdown({"run": run, "phases": phases})
    assert "| under load (sync) | 4.70 | 5.64 | 7.05 | 4.70x | 0.990 | 14.9 | **not met** |" in report
    assert "| vlm.request_sent | 0.001 | 1.200 |" in report
    assert "| under load (sync) | 2.800 | 3.400 | 1.38x |" in report


@pytest.mark.parametrize(("argv", "message"), [
    (["--load", "sync,batch"], "--load: sync, jobs or sync,jobs (got sync,batch)"),
    (["--samples", "0"], "--slots, --big and --samples must be >= 1"),
    (["--big-document", "nowhere.pdf"], "no such file"),
    (["--vlm-profile", "gpu9000"], "known profiles are"),
])
def test_bad_options_are_refused_by_name(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        fairness.parse_args(argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err

