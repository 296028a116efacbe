"""Benchmark results as files: ``results.json`` (every raw number), ``results.md`` (the
tables) and ``results.png`` (throughput and latency against load).

Everything here works from the results dictionary alone, so a report can be written
again from a saved ``results.json``:  python -m bench.report bench/results/<run>/results.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Sequence

from docparse.compare.metrics import percentile

JSON_NAME, MARKDOWN_NAME, PLOT_NAME = "results.json", "results.md", "results.png"


def distribution(values: Sequence[float]) -> dict[str, float | int | None]:
    """n, mean, p50, p95, p99 and max of ``values`` (seconds)."""
    return {
        "n": len(values),
        "mean": sum(values) / len(values) if values else None,
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "max": max(values) if values else None,
    }


def write_reports(results: dict, out: Path) -> list[Path]:
    """Write the three files into ``out``; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / JSON_NAME, out / MARKDOWN_NAME, out / PLOT_NAME]
    paths[0].write_text(json.dumps(results, indent=1) + "\n")
    paths[1].write_text(markdown(results))
    plot(results, paths[2])
    return paths


# --- Markdown ------------------------------------------------------------------------------


def _num(value: Any, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _ms(seconds: float | None, digits: int = 0) -> str:
    return "–" if seconds is None else f"{seconds * 1000:.{digits}f}"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table (every report of bench/ writes its tables with this)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def load_label(point: dict) -> str:
    """``c=16`` for a closed-loop point, ``2.0/s poisson`` for an open-loop one."""
    load = point["load"]
    if load["mode"] == "closed":
        return f"c={load['concurrency']}"
    return f"{load['rate']:g}/s {load['arrival']}"


def markdown(results: dict) -> str:
    """The human-readable report."""
    parts = run_description(results)
    points = results["points"]
    if points:
        parts += throughput_table(points) + cpu_tables(points)
    overhead = results.get("overhead") or []
    if overhead:
        parts += overhead_table(overhead, results.get("gateway_share_s") or {}) + stage_tables(overhead)
    return "\n".join(parts) + "\n"


def run_description(results: dict) -> list[str]:
    """The title and what was run, on what: the numbers below mean nothing without it."""
    run, machine = results["run"], results["machine"]
    return [
        f"# DocParse HPS benchmark {run['started']}",
        "",
        f"Target **{run['target']}**{' (' + run['route'] + ')' if run['target'] == 'gateway' else ''}, "
        f"documents {', '.join(d['name'] for d in run['documents'])}, window "
        f"{run['budget']}, warm-up {run['warmup_s']:g} s; VLM stand-in latency "
        f"{results['stack']['config']['vlm_latency']:g} s, {results['stack']['config']['vlm_slots']} slots. "
        f"Machine: {machine['cpus']} CPUs ({machine['cpu_model']}), load average before "
        f"{machine['loadavg_before'][0]:.2f}, after {machine['loadavg_after'][0]:.2f}; commit "
        f"{results['git']['commit'][:10]}{' (dirty)' if results['git']['dirty'] else ''}.",
        "",
        "Numbers from a shared or small machine are indicative only.",
    ]


def throughput_table(points: list[dict]) -> list[str]:
    """Per point: pages and regions per second, latency, VLM utilisation, errors."""
    return ["", "## Throughput and latency", "", markdown_table(
        ["load", "pages/s", "regions/s", "requests ok/failed", "latency p50/p95/p99 ms",
         "first page p50 ms", "VLM utilisation", "queued at client (p95 wait ms)", "errors"],
        [[
            load_label(p),
            _num(p["pages_per_s"]),
            _num(p["regions_per_s"]),
            f"{p['requests']['ok']}/{p['requests']['failed']}",
            "/".join(_ms(p["latency_s"][k]) for k in ("p50", "p95", "p99")),
            _ms(p["first_page_s"]["p50"]),
            _num(p["vlm_utilisation"]["value"]),
            f"{p['queued_requests']} ({_ms(p['queue_wait_s']['p95'])})" if "queued_requests" in p else "–",
            ", ".join(f"{kind}: {e['count']}" for kind, e in p["errors"].items()) or "0",
        ] for p in points],
    ), "", f"Regions counted from {points[0]['regions']['source']}; the simulator's "
        "succeeded calls in the same window are in results.json "
        "(`regions.simulator_succeeded_calls`). VLM utilisation: "
        f"{points[0]['vlm_utilisation']['method']}."]


def cpu_tables(points: list[dict]) -> list[str]:
    """Per point: CPU seconds per page by process and by stage, and Triton's compute time
    per page by model (when Triton reported any)."""
    roles = sorted({role for p in points for role in p["cpu"]["by_role"]})
    parts = ["", "## CPU seconds per page, by process", "", markdown_table(
        ["load", *roles, "all"],
        [[load_label(p), *(_num(p["cpu"]["by_role"].get(r, {}).get("per_page_s"), 3) for r in roles),
          _num(p["cpu"]["total_per_page_s"], 3)] for p in points],
    )]
    stages = list(points[0]["stages"])
    parts += ["", "## CPU seconds per page, by stage", "", markdown_table(
        ["load", *stages],
        [[load_label(p), *(_num(p["stages"][s]["cpu_per_page_s"], 4) for s in stages)] for p in points],
    ), "", "Sources: " + "; ".join(f"{s}: {points[0]['stages'][s]['source']}" for s in stages) + "."]
    models = sorted({m for p in points for m in p["triton_compute"]})
    if models:
        parts += ["", "## Triton compute time per page (ms, wall, from Triton's metrics)", "", markdown_table(
            ["load", *models],
            [[load_label(p), *(_num(p["triton_compute"].get(m, {}).get("compute_ms_per_page"), 1)
                               for m in models)] for p in points],
        )]
    return parts


def overhead_table(overhead: list[dict], shares: dict[str, float | None]) -> list[str]:
    """The overhead measurements at concurrency 1 and the gateway's share of them."""
    parts = ["", "## Overhead at concurrency 1 (p50, ms)", "",
             "overhead = end-to-end − (render + layout + VLM); VLM from the simulator's call "
             "records (union of each request's calls, received → finished).", "", markdown_table(
        ["target", "document", "requests", "end-to-end", "render", "layout", "VLM", "overhead",
         "overhead p95", "of which crop CPU"],
        [[o["target"], o["document"], str(o["requests"]),
          *(_ms(o[k]["p50"]) for k in ("end_to_end_s", "render_s", "layout_s", "vlm_s", "overhead_s")),
          _ms(o["overhead_s"]["p95"]), _ms(o["crop_cpu_s"]["p50"])] for o in overhead],
    )]
    if shares:
        parts += ["", "The gateway's share (gateway overhead − Triton overhead, p50): " + ", ".join(
            f"{document}: {_ms(value)} ms" for document, value in shares.items()) + "."]
    return parts


def stage_tables(overhead: list[dict]) -> list[str]:
    """Per stage, the p50 of the time spent in it, for each overhead measurement
    (bench/stages.py says how the intervals are cut)."""
    measured = [o for o in overhead if o.get("stages")]
    if not measured:
        return []
    from bench.stages import STAGES

    what: dict[str, str] = {}
    by_measurement = []
    for o in measured:
        stages = {s["stage"]: s for s in o["stages"]["stages"]}
        by_measurement.append(stages)
        what.update((name, stage["what"]) for name, stage in stages.items())
    known = list(STAGES)
    order = sorted(what, key=lambda name: (known.index(name) if name in known else len(known), name))
    rows = [[f"`{name}`", what[name],
             *(_ms(stages[name]["seconds"]["p50"], 1) if name in stages else "–" for stages in by_measurement)]
            for name in order]
    rows.append(["**overhead**", "end-to-end − render − layout − VLM",
                 *(f"**{_ms(o['stages']['overhead_s']['p50'], 1)}**" for o in measured)])
    return ["", "## Where the time goes, stage by stage (p50, ms)", "",
            "Each interval between consecutive marks of a request counts for the stage that ends it "
            "(bench/stages.py); the intervals add up to the end-to-end time. With layout on, the VLM "
            "calls of the regions overlap: the time between the first call's start and the last "
            "one's counts for their \"received\" stages, so the overhead here is higher than the "
            "table above (union of the calls).", "",
            markdown_table(["stage", "time up to it", *(f"{o['target']}, {o['document']}" for o in measured)], rows)]


# --- plot ----------------------------------------------------------------------------------


def plot(results: dict, path: Path) -> None:
    """Throughput (pages/s, regions/s) and latency (p50, p95) against load, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = results["points"]
    closed = bool(points) and points[0]["load"]["mode"] == "closed"
    x = [p["load"]["concurrency"] if closed else p["load"]["rate"] for p in points]
    figure, (throughput, latency) = plt.subplots(1, 2, figsize=(11, 4.2))
    for axes in (throughput, latency):
        axes.set_xlabel("concurrent requests" if closed else "offered load (documents/s)")
        if closed and len(set(x)) > 1:
            axes.set_xscale("log", base=2)
        axes.set_xticks(x, [f"{value:g}" for value in x])
        axes.minorticks_off()
        axes.grid(True, alpha=0.3)
    throughput.plot(x, [p["pages_per_s"] for p in points], "o-", label="pages/s")
    throughput.plot(x, [p["regions_per_s"] for p in points], "s--", label="regions/s")
    throughput.set_ylabel("per second")
    throughput.set_title("Throughput")
    throughput.legend()
    for key, style in (("p50", "o-"), ("p95", "s--")):
        latency.plot(x, [p["latency_s"][key] for p in points], style, label=f"latency {key}")
    latency.set_ylabel("seconds per request")
    latency.set_title("Latency")
    latency.legend()
    figure.suptitle(f"DocParse HPS, {results['run']['target']}, {results['run']['started']}", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m bench.report RESULTS_JSON  (writes results.md and results.png beside it)",
              file=sys.stderr)
        return 2
    source = Path(args[0])
    try:
        results = json.loads(source.read_text())
    except (OSError, ValueError) as exc:
        print(f"error: cannot read {source}: {exc}", file=sys.stderr)
        return 1
    for path in write_reports(results, source.parent):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
