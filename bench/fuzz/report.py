"""A fuzz run's report: counts by status, by input kind and by path, the slowest
answers, the failures with their reproducers, the processes watched; as JSON and as
Markdown (the table RELIABILITY.md quotes)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from bench.fuzz.run import FuzzResult


def summary(result: FuzzResult, about: dict[str, Any]) -> dict[str, Any]:
    tally = result.tally
    statuses: Counter = sum(tally.by_kind.values(), Counter())
    return {
        **about,
        "inputs": result.inputs,
        "sent": tally.sent,
        "seconds": round(result.seconds, 1),
        "clean": result.clean,
        "statuses": dict(sorted(statuses.items())),
        "by_kind": {kind: dict(sorted(c.items())) for kind, c in sorted(tally.by_kind.items())},
        "by_path": {path: dict(sorted(c.items())) for path, c in sorted(tally.by_path.items())},
        "slowest": [{"seconds": round(s, 3), "index": i, "kind": k, "status": st}
                    for s, i, k, st in sorted(tally.slowest, reverse=True)],
        "failures": tally.failures,
        "harness_errors": tally.harness_errors,
        "processes": {"watched": result.watched, "lost": result.lost, "replaced": result.replaced},
        "ready_status": result.ready_status,
    }


def markdown(report: dict[str, Any]) -> str:
    statuses = sorted(report["statuses"])
    lines = [
        f"# Fuzz run {report.get('date', '')}",
        "",
        f"`{report.get('command', '')}`, seed {report.get('seed')}, commit {report.get('commit', '?')}",
        "",
        f"{report['sent']} of {report['inputs']} inputs in {report['seconds']} s "
        f"({report['sent'] / max(report['seconds'], 1e-9):.1f}/s); "
        f"{len(report['failures'])} failures; {report['processes']['watched']} processes watched, "
        f"{len(report['processes']['lost'])} lost, {len(report['processes']['replaced'])} new; "
        f"/health/ready after: {report['ready_status']}. **{'clean' if report['clean'] else 'NOT CLEAN'}**",
        "",
        *table("input kind", report["by_kind"], statuses),
        "",
        *table("request", report["by_path"], statuses),
        "",
        "Slowest answers: " + ", ".join(f"{s['seconds']} s (#{s['index']} {s['kind']}, {s['status']})"
                                        for s in report["slowest"]),
    ]
    for error in report["harness_errors"]:
        lines.append(f"- THE FUZZER FAILED (the run stopped early): {error}")
    for failure in report["failures"]:
        lines.append(f"- FAILURE #{failure['index']} {failure['kind']} {failure['request']}: "
                     f"{failure['problem']} ({failure.get('reproducer', 'not saved')})")
    return "\n".join(lines) + "\n"


def table(title: str, rows: dict[str, dict[str, int]], statuses: list[str]) -> list[str]:
    """A Markdown table: a row per key, a column per status, and the totals."""
    lines = [f"| {title} | inputs | " + " | ".join(statuses) + " |", "|---|---:|" + "---:|" * len(statuses)]
    for name, counts in rows.items():
        cells = " | ".join(str(counts.get(status, "")) for status in statuses)
        lines.append(f"| {name} | {sum(counts.values())} | {cells} |")
    totals = Counter()
    for counts in rows.values():
        totals.update(counts)
    lines.append(f"| **all** | {sum(totals.values())} | " + " | ".join(str(totals[s]) for s in statuses) + " |")
    return lines


def write(out: Path, report: dict[str, Any]) -> str:
    """results.json and results.md in ``out``; the Markdown, to print."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(report, indent=1))
    text = markdown(report)
    (out / "results.md").write_text(text)
    return text
