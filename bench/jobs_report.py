"""What ``bench.jobs`` makes of its measurements: the long job's memory per process (flat
or not), the jobs-against-sync ratio, and their Markdown and PNG. Works from the results
dictionary alone, like ``bench.report``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.report import markdown_table

TARGET_RATIO = 0.95  # issue #15: jobs' pages/s within 5% of the sync route's


# --- memory ----------------------------------------------------------------------------------


def memory_summary(samples: list[dict], pages: int, flat_mib: float) -> dict:
    """Per process: RSS (and its private part) at the start, at the 10% and 50% marks, at
    the end, its peak during the job, after the result was read; flat when it grew at
    most ``flat_mib`` between the 10% and 100% marks. The growth from 50% shows whether
    it still grows (a leak grows as much in each half) or has settled."""
    end = next(s for s in samples if s["mark"] == "end")
    during = samples[:samples.index(end) + 1]
    marks = {share: next((s for s in during[1:] if s["pages_done"] >= share * pages), end) for share in (0.1, 0.5)}
    labels = sorted({label for s in samples for label in s["rss_mib"]}, key=_process_order)
    processes = {}
    for label in labels:
        def at(sample: dict, part: int = 0) -> float | None:
            value = sample["rss_mib"].get(label)
            return value[part] if value else None

        growth = _minus(at(end), at(marks[0.1]))
        processes[label] = {
            "start_mib": at(samples[0]), "at_10pct_mib": at(marks[0.1]), "at_50pct_mib": at(marks[0.5]),
            "end_mib": at(end), "peak_mib": max((at(s) or 0.0) for s in during), "after_result_mib": at(samples[-1]),
            "growth_mib": growth, "growth_from_50pct_mib": _minus(at(end), at(marks[0.5])),
            "private_at_10pct_mib": at(marks[0.1], 1), "private_end_mib": at(end, 1),
            "private_growth_mib": _minus(at(end, 1), at(marks[0.1], 1)),
            "flat": None if growth is None else growth <= flat_mib,
        }
    return {
        "flat_mib": flat_mib, "end": {"t": end["t"], "pages_done": end["pages_done"]},
        **{f"mark_{int(share * 100)}pct": {"t": mark["t"], "pages_done": mark["pages_done"]}
           for share, mark in marks.items()},
        "all_flat": all(row["flat"] is not False for row in processes.values()),
        "processes": processes,
    }


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 2)


def _process_order(label: str) -> tuple[int, str]:
    order = ("gateway", "tritonserver", "stub:", "render", "simulator")
    return next((i for i, prefix in enumerate(order) if label.startswith(prefix)), len(order)), label


# --- jobs against sync -----------------------------------------------------------------------


def comparison_summary(runs: list[dict]) -> dict:
    """Mean pages/s per mode over its runs, the ratio jobs/sync overall and per round,
    and the CPU per page of each role (where jobs cost more)."""
    modes: dict[str, Any] = {}
    for mode in ("sync", "jobs"):
        mine = [run for run in runs if run["mode"] == mode]
        roles = sorted({role for run in mine for role in run["cpu"]["by_role"]})
        modes[mode] = {
            "runs": len(mine),
            "pages_per_s": [round(run["pages_per_s"], 3) for run in mine],
            "mean_pages_per_s": _mean([run["pages_per_s"] for run in mine]),
            "mean_vlm_calls_per_s": _mean([run["regions"]["simulator_succeeded_calls"] / run["window_s"] for run in mine]),
            "mean_latency_p50_s": _mean([run["latency_s"]["p50"] for run in mine if run["latency_s"]["p50"]]),
            "failed_requests": sum(run["requests"]["failed"] for run in mine),
            "cpu_per_page_s": {role: _mean([run["cpu"]["by_role"][role]["per_page_s"] or 0.0 for run in mine
                                            if role in run["cpu"]["by_role"]]) for role in roles},
            "cpu_total_per_page_s": _mean([run["cpu"]["total_per_page_s"] or 0.0 for run in mine]),
        }
    sync, jobs = modes["sync"]["mean_pages_per_s"], modes["jobs"]["mean_pages_per_s"]
    ratio = jobs / sync if sync and jobs is not None else None
    rounds = sorted({run["round"] for run in runs})
    per_round = {}
    for number in rounds:
        pair = {run["mode"]: run["pages_per_s"] for run in runs if run["round"] == number}
        if pair.get("sync") and "jobs" in pair:
            per_round[number] = round(pair["jobs"] / pair["sync"], 3)
    return {"modes": modes, "ratio": None if ratio is None else round(ratio, 3), "ratio_per_round": per_round,
            "target_ratio": TARGET_RATIO, "met": None if ratio is None else ratio >= TARGET_RATIO}


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


# --- Markdown --------------------------------------------------------------------------------


def markdown(results: dict) -> str:
    lines = [f"# Jobs ({results['run']['started']})", "", f"`{' '.join(results['run']['command'])}` "
             f"on {results['git']['commit'][:10]}{' (dirty)' if results['git']['dirty'] else ''}, "
             f"{results['machine']['cpus_usable']} CPUs.", ""]
    for job in results.get("long_jobs", []):
        lines += long_job_markdown(job)
    if len(results.get("long_jobs", [])) > 1:
        lines += across_jobs_markdown(results["long_jobs"])
    if "comparison" in results:
        lines += comparison_markdown(results["comparison"])
    return "\n".join(lines) + "\n"


def _f(value: float | None, digits: int = 1, sign: bool = False) -> str:
    return "–" if value is None else f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def long_job_markdown(job: dict) -> list[str]:
    memory = job["memory"]
    rows = [[label, _f(p["start_mib"]), _f(p["at_10pct_mib"]), _f(p["at_50pct_mib"]), _f(p["end_mib"]),
             _f(p["peak_mib"]), _f(p["after_result_mib"]), _f(p["growth_mib"], sign=True),
             _f(p["growth_from_50pct_mib"], sign=True), _f(p["private_growth_mib"], sign=True),
             {True: "yes", False: "**no**", None: "–"}[p["flat"]]] for label, p in memory["processes"].items()]
    return [
        f"## Long job {job['number']}", "",
        f"{job['job']['pagesDone']} of {job['pages']} pages ({job['job']['pagesFailed']} failed, status "
        f"{job['job']['status']}) in {job['run_s']} s: **{_f(job['pages_per_s'], 2)} pages/s** at {job['dpi']} dpi, "
        f"VLM {job['vlm_latency_s']} s per call; the result has {job['result_pages']} pages. "
        f"CPU {_f(job['cpu']['total_per_page_s'], 3)} s per page, all processes.", "",
        f"RSS in MiB; the 10% mark is {memory['mark_10pct']['pages_done']} pages at {memory['mark_10pct']['t']} s, "
        f"the 50% mark {memory['mark_50pct']['pages_done']} pages at {memory['mark_50pct']['t']} s. "
        f"Flat: at most {memory['flat_mib']:g} MiB more at the end than at the 10% mark. "
        f"**All flat: {'yes' if memory['all_flat'] else 'no'}.**", "",
        markdown_table(["process", "start", "at 10%", "at 50%", "end", "peak", "after result read",
                        "growth 10%→end", "growth 50%→end", "private growth 10%→end", "flat"], rows), "",
    ]


def across_jobs_markdown(jobs: list[dict]) -> list[str]:
    """RSS at the end of each job: what one job leaves behind that the next does not reuse."""
    labels = [label for label in jobs[0]["memory"]["processes"]]
    rows = [[label, _f(jobs[0]["memory"]["processes"][label]["start_mib"]),
             *(_f(job["memory"]["processes"].get(label, {}).get("end_mib")) for job in jobs),
             _f(_minus(jobs[-1]["memory"]["processes"].get(label, {}).get("end_mib"),
                       jobs[0]["memory"]["processes"][label]["end_mib"]), sign=True)] for label in labels]
    return ["## RSS at the end of each long job", "",
            markdown_table(["process", "start", *(f"end of job {job['number']}" for job in jobs),
                            f"job {jobs[-1]['number']} end − job 1 end"], rows), ""]


def comparison_markdown(comparison: dict) -> list[str]:
    summary = comparison["summary"]
    rows = [[str(run["round"]), run["mode"], _f(run["pages_per_s"], 2),
             _f(run["regions"]["simulator_succeeded_calls"] / run["window_s"], 1), _f(run["latency_s"]["p50"], 2),
             str(run["requests"]["failed"]), _f(run["cpu"]["total_per_page_s"], 3),
             _f(run["cpu"]["by_role"].get("gateway", {}).get("per_page_s"), 4)] for run in comparison["runs"]]
    modes = summary["modes"]
    return [
        "## Jobs against the sync route", "",
        f"{comparison['concurrency']} documents of {comparison['pages_per_document']} pages in flight, "
        f"{comparison['duration_s']:g} s per run, VLM {comparison['vlm_latency_s']} s per call, jobs polled every "
        f"{comparison['poll_s']} s.", "",
        markdown_table(["round", "mode", "pages/s", "VLM calls/s", "latency p50 s", "failed",
                        "CPU s/page, all", "gateway CPU s/page"], rows), "",
        f"Mean pages/s: sync {_f(modes['sync']['mean_pages_per_s'], 2)}, jobs {_f(modes['jobs']['mean_pages_per_s'], 2)}; "
        f"**jobs/sync = {_f(summary['ratio'], 3)}** (per round: "
        f"{', '.join(f'{r:.3f}' for r in summary['ratio_per_round'].values()) or '–'}); target ≥ "
        f"{summary['target_ratio']}: **{'met' if summary['met'] else 'not met'}**.", "",
        *phases_markdown(comparison["runs"]),
    ]


PHASES = ("submit", "queued", "running", "until_seen", "result", "total")


def phases_markdown(runs: list[dict]) -> list[str]:
    """Where a job's time went, against a sync request's latency in the runs beside it."""
    sync = [run["latency_s"]["mean"] for run in runs if run["mode"] == "sync" and run["latency_s"]["mean"]]
    rows = [[str(run["round"]), str(run["job_phases_s"]["jobs"]),
             *(_f(run["job_phases_s"].get(name), 3) for name in PHASES)]
            for run in runs if run.get("job_phases_s", {}).get("jobs")]
    if not rows:
        return []
    return ["Mean seconds of each part of a job (all jobs of the run, warm-up and drain included); "
            f"a sync request took {_f(_mean(sync), 3)} s on average in the sync runs' windows.", "",
            markdown_table(["round", "jobs", "POST /jobs", "queued", "running", "until a poll saw it",
                            "GET result", "total"], rows), ""]


# --- plot ------------------------------------------------------------------------------------


def plot(results: dict, path: Path) -> None:
    """Left: each process's RSS during the long jobs; right: pages/s of every run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parts = [part for part in ("long_jobs", "comparison") if results.get(part)]
    figure, axes = plt.subplots(1, len(parts), figsize=(8 * len(parts), 5.5), squeeze=False)
    for ax, part in zip(axes[0], parts):
        (plot_memory if part == "long_jobs" else plot_runs)(ax, results[part])
        ax.grid(True, alpha=0.3)
    figure.suptitle(f"DocParse HPS jobs, {results['run']['started']}", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_memory(ax: Any, jobs: list[dict]) -> None:
    """The jobs one after the other on one time axis, each with its 10% and end marks."""
    import matplotlib

    ax.set_prop_cycle(color=matplotlib.colormaps["tab20"].colors)
    offset, series = 0.0, {}
    for job in jobs:
        for sample in job["samples"]:
            for label, value in sample["rss_mib"].items():
                series.setdefault(label, []).append((offset + sample["t"], value[0]))
        ax.axvline(offset + job["memory"]["mark_10pct"]["t"], color="grey", linestyle=":")
        ax.axvline(offset + job["memory"]["end"]["t"], color="black", linestyle=":")
        offset += job["samples"][-1]["t"]
    for label, points in series.items():
        ax.plot([t for t, _ in points], [v for _, v in points], label=label, linewidth=1)
    ax.set_xlabel("seconds (dotted: 10% of a job's pages, grey; the job done, black)")
    ax.set_ylabel("RSS (MiB)")
    ax.set_title(f"{len(jobs)} job(s) of {jobs[0]['pages']} pages: RSS per process")
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)


def plot_runs(ax: Any, comparison: dict) -> None:
    runs = comparison["runs"]
    colors = {"sync": "tab:blue", "jobs": "tab:orange"}
    ax.bar(range(len(runs)), [run["pages_per_s"] for run in runs], color=[colors[run["mode"]] for run in runs])
    ax.set_xticks(range(len(runs)), [f"{run['mode']} {run['round']}" for run in runs])
    ax.set_ylabel("pages/s")
    ratio = comparison["summary"]["ratio"]
    ax.set_title(f"c={comparison['concurrency']}, {comparison['pages_per_document']}-page documents: "
                 f"jobs/sync = {_f(ratio, 3)}")
