"""Benchmark peer: the GLM-OCR SDK (``pip install glmocr``) parsing PDFs against a VLM.

Run it with the PEER venv's python, never ours (see bench/PEER.md for building it):

    bench/.venv-peer/bin/python bench/peer_glmocr.py --vlm-url http://127.0.0.1:8118/v1 \\
        --documents a.pdf b.pdf c.pdf --max-workers 16 --out peer.json

It uses the standard library and glmocr only (no package of this project), and drives the
SDK the way its own CLI does (``glmocr parse DIR``: every document in one ``process()``
call, results taken as they complete), in self-hosted mode (``maas.enabled=false``)
against the given OpenAI-compatible endpoint and model.

Layout off: glmocr 0.1.5 has no switch that turns layout detection off (an
``enable_layout`` key is accepted and ignored); without a detector of its own the pipeline
builds PP-DocLayoutV3, which needs torch, transformers, opencv and a hub download. So this
script passes the SDK's hook ``Pipeline(config, layout_detector=...)`` a detector that
returns each whole page as one text region: every page is then exactly one
"Text Recognition:" call, the same work our service does with layout off.

Everything else is the SDK's default unless a flag says otherwise:
``--max-workers`` (pipeline.max_workers: the size of the thread pool that sends VLM calls,
i.e. the most calls in flight; the shipped config.yaml says 32) and ``--dpi``
(page_loader.pdf_dpi; the SDK renders at 200). Each page is then resized to multiples
of 28 pixels (``max_pixels`` in the shipped config.yaml is 71,372,800, so a page is never
scaled down: A4 at 200 dpi goes out as 1652x2352) and JPEG-encoded, one page at a time on
the pipeline's single recognition thread, before the pool sends it.

The JSON written by ``--out``: pages, documents, wall seconds, pages/s, per-document
seconds, errors, the SDK settings used, versions, and client-side timings (render,
encode, VLM call latency, peak calls in flight seen by the client).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import threading
import time
import urllib.parse
from importlib import metadata
from pathlib import Path

# Regions the whole-page detector reports: one per page, all of the page, read as text.
WHOLE_PAGE = {"index": 0, "label": "text", "score": 1.0, "bbox_2d": [0, 0, 1000, 1000], "polygon": None}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--vlm-url", help="OpenAI base URL of the VLM, e.g. http://127.0.0.1:8118/v1")
    where.add_argument("--vlm-host", help="VLM host (with --vlm-port); the path is /v1/chat/completions")
    parser.add_argument("--vlm-port", type=int, default=8118)
    parser.add_argument("--model", default="glm-ocr", help="served model name (default: glm-ocr)")
    parser.add_argument("--documents", nargs="+", required=True, type=Path, metavar="FILE", help="PDF (or image) files")
    parser.add_argument("--repeat", type=int, default=1, help="submit every document this many times (default 1)")
    parser.add_argument(
        "--mode", choices=("batch", "sequential"), default="batch",
        help="batch: all documents in one process() call, as `glmocr parse DIR` does (default); "
             "sequential: one process() call per document, one after another",
    )
    parser.add_argument(
        "--max-workers", type=int, default=None,
        help="pipeline.max_workers: VLM calls in flight at most (SDK default from its config.yaml: 32; "
             "for a fair comparison set it to the VLM's decode slots)",
    )
    parser.add_argument("--dpi", type=int, default=None, help="page_loader.pdf_dpi (SDK default: 200; our service: 144)")
    parser.add_argument("--request-timeout", type=int, default=None, help="ocr_api.request_timeout seconds (SDK default 120)")
    parser.add_argument("--log-level", default="WARNING", help="glmocr log level (default WARNING)")
    parser.add_argument("--out", type=Path, help="write the result JSON here (it is printed too)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.max_workers is not None and args.max_workers < 1:
        parser.error("--max-workers must be at least 1")
    for path in args.documents:
        if not path.is_file():
            parser.error(f"no such file: {path}")
    return args


def endpoint(args: argparse.Namespace) -> tuple[str, str, int]:
    """(chat-completions URL, host, port) from --vlm-url or --vlm-host/--vlm-port."""
    if args.vlm_url:
        parts = urllib.parse.urlsplit(args.vlm_url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SystemExit(f"--vlm-url must be http(s)://HOST:PORT/v1, got {args.vlm_url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        path = parts.path if parts.path.endswith("/chat/completions") else parts.path + "/chat/completions"
        return f"{parts.scheme}://{parts.hostname}:{port}{path}", parts.hostname, port
    return f"http://{args.vlm_host}:{args.vlm_port}/v1/chat/completions", args.vlm_host, args.vlm_port


def versions() -> dict:
    found = {"python": platform.python_version()}
    for name in ("glmocr", "pymupdf", "pillow", "numpy", "requests", "pydantic"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


class Recorder:
    """Thread-safe timings, taken by wrapping the pipeline's public objects (no SDK code
    changed): when each page left the renderer, how long each page took to encode, and
    when each VLM call started and ended with which status."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pages_rendered: list[float] = []
        self.encode_seconds: list[float] = []
        self.calls: list[tuple[float, float, int]] = []

    def wrap(self, pipeline) -> None:
        build = pipeline.page_loader.build_request_from_image
        send = pipeline.ocr_client.process

        def timed_build(*a, **kw):
            t0 = time.perf_counter()
            try:
                return build(*a, **kw)
            finally:
                with self.lock:
                    self.encode_seconds.append(time.perf_counter() - t0)

        def timed_send(*a, **kw):
            t0 = time.perf_counter()
            status = -1
            try:
                response, status = send(*a, **kw)
                return response, status
            finally:
                with self.lock:
                    self.calls.append((t0, time.perf_counter(), status))

        pipeline.page_loader.build_request_from_image = timed_build
        pipeline.ocr_client.process = timed_send

    def summary(self, t_start: float) -> dict:
        with self.lock:
            calls = sorted(self.calls)
            encode = list(self.encode_seconds)
            rendered = sorted(self.pages_rendered)
        events = sorted([(s, 1) for s, _, _ in calls] + [(e, -1) for _, e, _ in calls], key=lambda x: (x[0], x[1]))
        in_flight = peak = 0
        for _, step in events:
            in_flight += step
            peak = max(peak, in_flight)
        latencies = [e - s for s, e, _ in calls]
        span = (rendered[-1] - rendered[0]) if len(rendered) > 1 else 0.0

        def ms(values: list[float]) -> dict | None:
            if not values:
                return None
            ordered = sorted(values)
            return {
                "mean": round(1000 * statistics.fmean(ordered), 1),
                "p50": round(1000 * ordered[len(ordered) // 2], 1),
                "max": round(1000 * ordered[-1], 1),
            }

        return {
            "vlm_calls": len(calls),
            "vlm_calls_not_200": sum(1 for _, _, status in calls if status != 200),
            "vlm_call_ms": ms(latencies),
            "client_peak_in_flight": peak,
            "encode_ms_per_page": ms(encode),
            "first_page_rendered_s": round(rendered[0] - t_start, 3) if rendered else None,
            "last_page_rendered_s": round(rendered[-1] - t_start, 3) if rendered else None,
            "render_pages_per_s": round((len(rendered) - 1) / span, 2) if span > 0 else None,
            "first_call_s": round(calls[0][0] - t_start, 3) if calls else None,
        }


def make_detector(recorder: Recorder):
    """The layout-off hook: a BaseLayoutDetector that makes each page one text region."""
    from glmocr.layout.base import BaseLayoutDetector

    class WholePageLayout(BaseLayoutDetector):
        batch_size = 1  # the layout thread hands pages on one at a time

        def __init__(self) -> None:
            super().__init__(config=None)

        def start(self) -> None:
            pass

        def stop(self) -> None:
            pass

        def process(self, images, save_visualization=False, global_start_idx=0, use_polygon=False):
            now = time.perf_counter()
            with recorder.lock:
                recorder.pages_rendered.extend([now] * len(images))
            regions = [[dict(WHOLE_PAGE, task_type="text")] for _ in images]
            return regions, {}

    return WholePageLayout()


def build_config(args: argparse.Namespace, url: str, host: str, port: int):
    from glmocr.config import load_config

    dotted = {
        "pipeline.maas.enabled": False,
        "pipeline.ocr_api.api_url": url,
        "pipeline.ocr_api.api_host": host,
        "pipeline.ocr_api.api_port": port,
        "pipeline.ocr_api.model": args.model,
        "logging.level": args.log_level,
    }
    if args.max_workers is not None:
        dotted["pipeline.max_workers"] = args.max_workers
    if args.dpi is not None:
        dotted["pipeline.page_loader.pdf_dpi"] = args.dpi
    if args.request_timeout is not None:
        dotted["pipeline.ocr_api.request_timeout"] = args.request_timeout
    return load_config(None, mode="selfhosted", _dotted=dotted)


def run(args: argparse.Namespace) -> dict:
    from glmocr.pipeline import Pipeline
    from glmocr.utils.logging import ensure_logging_configured

    url, host, port = endpoint(args)
    config = build_config(args, url, host, port)
    ensure_logging_configured(level=config.logging.level, format_string=config.logging.format)
    pc = config.pipeline
    recorder = Recorder()
    pipeline = Pipeline(pc, layout_detector=make_detector(recorder))
    recorder.wrap(pipeline)

    # Units: every document --repeat times, passed as bytes so each result names its unit
    # ("document_<i>"), as GlmOcr.parse(bytes) does.
    paths = [path for _ in range(args.repeat) for path in args.documents]
    blobs = [path.read_bytes() for path in paths]
    startup = start_pipeline(pipeline, url)
    tally = Tally(paths, blobs)
    try:
        if args.mode == "batch":
            tally.consume(pipeline, list(range(len(blobs))))
        else:
            for unit in range(len(blobs)):
                tally.consume(pipeline, [unit])
    finally:
        wall = time.perf_counter() - tally.t_start
        pipeline.stop()

    if tally.failed_regions:
        tally.errors.append(f"{tally.failed_regions} region(s) without content (VLM call failed)")
    tally.per_document.sort(key=lambda d: d["unit"])
    return {
        "peer": "glmocr",
        "mode": args.mode,
        "vlm_url": url,
        "model": args.model,
        "documents": len(blobs),
        "pages": tally.pages,
        "wall_seconds": round(wall, 3),
        "pages_per_second": round(tally.pages / wall, 3) if wall > 0 else None,
        "startup_seconds": round(startup, 3),
        # batch: from the start of the one process() call to that document's result;
        # sequential: that document's own process() call
        "per_document_seconds": [d["seconds"] for d in tally.per_document],
        "per_document": tally.per_document,
        "errors": tally.errors,
        "settings": sdk_settings(pc, args.repeat),
        "client": recorder.summary(tally.t_start),
        "versions": versions(),
        "cpu_count": os.cpu_count(),
    }


def start_pipeline(pipeline, url: str) -> float:
    """Start the SDK's pipeline; the seconds it took. A VLM that fails the SDK's start-up
    probe ends the run with a message saying what the probe sends and needs."""
    t0 = time.perf_counter()
    try:
        pipeline.start()  # the SDK's text-only "hello" probe; it raises after connect_timeout (30 s)
    except Exception as exc:  # noqa: BLE001 - reported, not hidden
        raise SystemExit(
            f"glmocr could not start against {url}: {type(exc).__name__}: {exc}\n"
            "(its start-up probe POSTs a text-only chat completion {'messages': [{'role': 'user', "
            "'content': [{'type': 'text', 'text': 'hello'}]}], 'max_tokens': 10, 'temperature': 0.1, "
            "'model': ...} and needs HTTP 200)"
        ) from None
    return time.perf_counter() - t0


class Tally:
    """What the SDK returned, document by document as its results complete, counted from
    ``t_start`` (made after the pipeline started)."""

    def __init__(self, paths: list[Path], blobs: list[bytes]) -> None:
        self.paths = paths
        self.blobs = blobs
        self.per_document: list[dict] = []
        self.errors: list[str] = []
        self.pages = 0
        self.failed_regions = 0
        self.t_start = time.perf_counter()

    def consume(self, pipeline, units: list[int]) -> None:
        """One ``process()`` call over the documents ``units`` (indices of ``blobs``)."""
        content = [{"type": "image_bytes", "data": self.blobs[u]} for u in units]
        request = {"messages": [{"role": "user", "content": content}]}
        t_call = time.perf_counter()
        try:
            for result in pipeline.process(request, save_layout_visualization=False, preserve_order=False):
                self.add(result, units, t_call)
        except Exception as exc:  # noqa: BLE001 - the SDK raises pipeline errors after the last result
            self.errors.append(f"{type(exc).__name__}: {exc}")

    def add(self, result, units: list[int], t_call: float) -> None:
        """One document's result; its name ("document_<i>", i its place in the call) says
        which unit it is."""
        done = time.perf_counter()
        name = (result.original_images or ["document_?"])[0]
        local = int(name.rsplit("_", 1)[1]) if name.rsplit("_", 1)[-1].isdigit() else -1
        unit = units[local] if 0 <= local < len(units) else -1
        raw = result.raw_json_result or []
        bad = sum(1 for page in raw for region in page if region.get("content") is None)
        self.pages += len(raw)
        self.failed_regions += bad
        self.per_document.append({
            "unit": unit,
            "document": str(self.paths[unit]) if unit >= 0 else name,
            "pages": len(raw),
            "failed_regions": bad,
            "seconds": round(done - t_call, 3),
            "finished_at_s": round(done - self.t_start, 3),
            "first_region": (raw[0][0].get("content") if raw and raw[0] else None),
        })


def sdk_settings(pc, repeat: int) -> dict:
    """The SDK settings the run used (``pc``: its pipeline config), for the result JSON."""
    return {
        "layout": "off: whole page = one text region (Pipeline layout_detector hook)",
        "max_workers": pc.max_workers,
        "connection_pool_size": pc.ocr_api.connection_pool_size,
        "pdf_dpi": pc.page_loader.pdf_dpi,
        "max_pixels": pc.page_loader.max_pixels,
        "image_format": pc.page_loader.image_format,
        "max_tokens": pc.page_loader.max_tokens,
        "request_timeout": pc.ocr_api.request_timeout,
        "retry_max_attempts": pc.ocr_api.retry_max_attempts,
        "page_maxsize": pc.page_maxsize,
        "region_maxsize": pc.region_maxsize,
        "repeat": repeat,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.captureWarnings(True)
    result = run(args)
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
