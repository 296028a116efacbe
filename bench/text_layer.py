"""The text layer on the CPU engines (issue #19): `make run`'s stack, one page a request,
a born-digital PDF read with textLayer auto and off, and the same pages scanned (PNG at
144 dpi), each page's seconds and word F1 against the PDF's own text.

    python -m bench.text_layer [--pdf FILE] [--pages 1-17] [--url http://127.0.0.1:8080]

Without --url it starts the stack (scripts.run_local, one gateway worker) on free ports
and stops it after. The PDF defaults to /usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf
when present (a real 17-page born-digital document), else the generated test document.
F1 is reported twice: against the page's whole text (headers, footers and page numbers
included, which layout leaves out of the Markdown) and against the text inside the
regions the page reads (what a perfect reader of those regions would give).
Writes results.json and results.md under bench/results/textlayer-<time>/.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pypdfium2 as pdfium

from bench.machine import REPO_ROOT, provenance
from docparse.client import request_for
from docparse.compare.metrics import word_f1
from docparse.documents import parse_page_ranges
from docparse.text_layer import extract
from scripts.processes import free_port, http_ok

SPEC_PDF = Path("/usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf")
DPI = 144


def page_words(pdf: bytes, index: int) -> tuple[str, list[tuple]]:
    """Page ``index``'s whole text and its words with boxes at ``DPI``."""
    document = pdfium.PdfDocument(pdf)
    try:
        page = document[index]
        text_page = page.get_textpage()
        return text_page.get_text_range(), extract(page, text_page, DPI / 72).words
    finally:
        document.close()


def scanned(pdf: bytes, index: int) -> bytes:
    """Page ``index`` as a PNG at ``DPI``: the page as a scanner gives it."""
    document = pdfium.PdfDocument(pdf)
    try:
        buffer = io.BytesIO()
        document[index].render(scale=DPI / 72).to_pil().save(buffer, format="PNG")
        return buffer.getvalue()
    finally:
        document.close()


def in_read_regions(words: list[tuple], result: dict) -> str:
    """The page's text inside the regions it reads (blocks with a source)."""
    boxes = [b["block_bbox"] for b in result["prunedResult"]["parsing_res_list"] if b.get("source")]
    inside = [w[0] for w in words if any(x1 <= (w[1] + w[3]) / 2 <= x2 and y1 <= (w[2] + w[4]) / 2 <= y2
                                         for x1, y1, x2, y2 in boxes)]
    return " ".join(inside)


def measure(client: httpx.Client, pdf: bytes, pages: list[int], case: str) -> list[dict]:
    """Each page through /layout-parsing alone: seconds, F1 and where its blocks came from."""
    rows = []
    for index in pages:
        text, words = page_words(pdf, index)
        if case == "scanned":
            body = request_for(scanned(pdf, index))
        else:
            body = {**request_for(pdf), "pages": str(index + 1), "dpi": DPI, "textLayer": case}
        started = time.perf_counter()
        answer = client.post("/layout-parsing", json=body)
        seconds = time.perf_counter() - started
        answer.raise_for_status()
        result = answer.json()["result"]["layoutParsingResults"][0]
        markdown = result["markdown"]["text"]
        blocks = [b for b in result["prunedResult"]["parsing_res_list"] if b.get("source")]
        rows.append({
            "case": case, "page": index + 1, "seconds": round(seconds, 3),
            "f1_page": round(word_f1(markdown, text), 4),
            "f1_regions": round(word_f1(markdown, in_read_regions(words, result)), 4),
            "blocks": len(blocks), "from_text_layer": sum(b["source"] == "text_layer" for b in blocks),
        })
        print(json.dumps(rows[-1]), flush=True)
    return rows


def summary(rows: list[dict]) -> dict:
    seconds = [r["seconds"] for r in rows]
    return {
        "pages": len(rows), "p50_s": round(statistics.median(seconds), 3), "mean_s": round(statistics.mean(seconds), 3),
        "max_s": max(seconds), "f1_page": round(statistics.mean(r["f1_page"] for r in rows), 4),
        "f1_regions": round(statistics.mean(r["f1_regions"] for r in rows), 4),
        "min_f1_regions": min(r["f1_regions"] for r in rows),
        "blocks_from_text_layer": f"{sum(r['from_text_layer'] for r in rows)}/{sum(r['blocks'] for r in rows)}",
    }


def start_stack(log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("HPS_LAYOUT_BACKEND", "HPS_RECOGNIZER", "HPS_TEXT_LAYER")}
    process = subprocess.Popen(
        [sys.executable, "-m", "scripts.run_local", "--port", str(port), "--triton-grpc-port", "0", "--workers", "1"],
        cwd=REPO_ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while not http_ok(f"{url}/health/ready"):
        if process.poll() is not None or time.monotonic() > deadline:
            stop_stack(process)
            raise SystemExit(f"the stack did not start (see {log})")
        time.sleep(0.5)
    return process, url


def stop_stack(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=60)


def write(out: Path, rows: list[dict], summaries: dict, source: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"source": source, "summary": summaries, "pages": rows,
                                                  "provenance": provenance()}, indent=2))
    lines = [f"Document: {source}, one page a request, CPU engines (make run), {DPI} dpi", "",
             "| case | pages | p50 s | mean s | max s | word F1 (page) | word F1 (read regions) | min F1 (regions) | blocks from text layer |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for case, s in summaries.items():
        lines.append(f"| {case} | {s['pages']} | {s['p50_s']} | {s['mean_s']} | {s['max_s']} | {s['f1_page']} | "
                     f"{s['f1_regions']} | {s['min_f1_regions']} | {s['blocks_from_text_layer']} |")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pdf", type=Path, default=SPEC_PDF if SPEC_PDF.is_file() else None)
    parser.add_argument("--pages", default=None, help='1-based ranges, "1-3,7"; default all')
    parser.add_argument("--cases", default="auto,off,scanned", help="auto, off (OCR), scanned (PNG pages)")
    parser.add_argument("--url", default=None, help="a running gateway (with the CPU engines); default: start one")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results" / time.strftime("textlayer-%Y%m%d-%H%M%S"))
    args = parser.parse_args(argv)
    if args.pdf is None:
        from testkit.documents import sample_pdf

        pdf, source = sample_pdf(3), "testkit sample_pdf(3)"
    else:
        pdf, source = args.pdf.read_bytes(), str(args.pdf)
    pages = parse_page_ranges(args.pages, len(pdfium.PdfDocument(pdf)))
    process, url = (None, args.url) if args.url else start_stack(args.out.with_suffix(".stack.log"))
    try:
        with httpx.Client(base_url=url, timeout=600) as client:
            client.post("/layout-parsing", json={**request_for(pdf), "pages": "1"}).raise_for_status()  # warm up
            rows = [row for case in args.cases.split(",") for row in measure(client, pdf, pages, case)]
    finally:
        if process is not None:
            stop_stack(process)
    summaries = {case: summary([r for r in rows if r["case"] == case]) for case in args.cases.split(",")}
    write(args.out, rows, summaries, source)


if __name__ == "__main__":
    main()
