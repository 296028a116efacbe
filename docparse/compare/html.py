"""compare.html: one self-contained page (inline CSS, inline SVG charts, no script, no
external asset), so that it opens from a mail attachment or an air-gapped share."""

from __future__ import annotations

from html import escape
from typing import Any

from docparse.compare.report import markdown, number

STYLE = """body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
td:first-child,th:first-child{text-align:left}pre{white-space:pre-wrap;background:#f6f6f6;padding:6px;margin:0}
.side{display:grid;grid-template-columns:1fr 1fr;gap:8px}svg{display:block;margin:0.5em 0 1.5em}
.fail{color:#b00}"""
COLOURS = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759"]


def bars(title: str, groups: list[tuple[str, list[float | None]]], series: list[str], unit: str = "",
         top: float | None = None) -> str:
    """A grouped bar chart as inline SVG: one group per label, one bar per series; the
    axis up to ``top`` (a ratio's 1.0), else the largest value."""
    top = top or max([v for _, values in groups for v in values if v is not None] + [1e-9])
    top = max([top] + [v for _, values in groups for v in values if v is not None])  # a CER past 1
    width, bar, height = 640, 18, 180
    group_w = max(bar * len(series) + 14, 84)  # room for the label under it
    width = max(width, 60 + group_w * len(groups))
    parts = [f'<svg role="img" width="{width}" height="{height + 60}">',
             f'<title>{escape(title)}</title><text x="4" y="14" font-weight="bold">{escape(title)}</text>']
    for g, (label, values) in enumerate(groups):
        x0 = 50 + g * group_w
        for s, value in enumerate(values):
            h = 0 if value is None else min(value / top, 1) * height
            x, y = x0 + s * bar, 24 + height - h
            parts.append(f'<rect x="{x}" y="{y:.1f}" width="{bar - 2}" height="{h:.1f}" fill="{COLOURS[s % 4]}">'
                         f'<title>{escape(series[s])} {escape(label)}: {number(value)}{unit}</title></rect>')
        parts.append(f'<text x="{x0}" y="{height + 40}" font-size="10">{escape(label[:13])}</text>')
    parts.append(f'<text x="4" y="{24 + 10}" font-size="10">{number(top, 2)}{unit}</text>')
    for s, name in enumerate(series):
        parts.append(f'<rect x="{50 + s * 140}" y="{height + 48}" width="10" height="10" fill="{COLOURS[s % 4]}"/>'
                     f'<text x="{64 + s * 140}" y="{height + 57}" font-size="11">{escape(name)}</text>')
    return "".join(parts) + "</svg>"


def charts(result: dict[str, Any]) -> str:
    """Latency per model, similarity per page, word F1 and CER per model."""
    keys, summary = result["models"], result["summary"]
    out = [bars("Latency per model (s)", [(k, [summary[k]["latency_p50_s"], summary[k]["latency_p95_s"]]) for k in keys],
                ["p50", "p95"], " s")]
    pages = [(f"{doc['document']} p{page['page']}", [page["similarity"]]) for doc in result["documents"] for page in doc["pages"]]
    out.append(bars("Similarity of the two outputs per page", pages, ["similarity"], top=1.0))
    if result["scoring_method"]:
        out.append(bars("Word F1 and CER per model", [(k, [summary[k]["word_f1"], summary[k]["cer"]]) for k in keys],
                        ["word F1", "CER"], top=1.0))
    return "\n".join(out)


def table(lines: list[str]) -> str:
    """A Markdown pipe table (as report.markdown writes it) as HTML."""
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines if not line.startswith("| ---")]
    head = "".join(f"<th>{escape(cell)}</th>" for cell in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>" for row in rows[1:])
    return f"<table><tr>{head}</tr>{body}</table>"


def tables(result: dict[str, Any]) -> str:
    """The Markdown report's tables and sentences, as HTML."""
    out, block = [], []
    for line in markdown(result).splitlines()[1:] + [""]:
        if line.startswith("|"):
            block.append(line)
            continue
        if block:
            out.append(table(block))
            block = []
        if line.startswith("## "):
            out.append(f"<h2>{escape(line[3:])}</h2>")
        elif line:
            out.append(f"<p>{escape(line)}</p>")
    return "\n".join(out)


def outputs(result: dict[str, Any]) -> str:
    """Each page's two outputs side by side, folded."""
    out = []
    for doc in result["documents"]:
        for page in doc["pages"]:
            cells = "".join(f"<div><b>{escape(k)}</b><pre>{escape(text)}</pre></div>" for k, text in page["markdown"].items())
            out.append(f"<details><summary>{escape(doc['document'])} page {page['page']} "
                       f"(similarity {number(page['similarity'])})</summary><div class=side>{cells}</div></details>")
    return "\n".join(out)


def page(result: dict[str, Any]) -> str:
    title = escape(f"Comparing {' and '.join(result['models'])}")
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{title}</title><style>{STYLE}</style></head>"
            f"<body><h1>{title}</h1>\n{charts(result)}\n{tables(result)}\n<h2>Outputs</h2>\n{outputs(result)}</body></html>\n")
