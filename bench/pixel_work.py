"""The pixel work a page needs whatever serves it, timed alone on the same pages: the
yardstick that "service CPU per page beyond the page's unavoidable pixel work" (issue
#19, BENCHMARKS.md "Feeding the VLM") is measured against.

For each page of a PDF: rasterising it with pdfium at the dpi and at the VLM's pixel
budget, decoding its PNG (as ``pages:FILE.pdf`` sends it) with OpenCV and with Pillow,
and JPEG-encoding the picture the VLM gets. CPU milliseconds of this thread, median and
p90 over the pages, each step repeated ``--repeat`` times.

    python -m bench.pixel_work /usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pypdfium2 as pdfium
from PIL import Image

from docparse.jpeg import encode_jpeg
from docparse.recognition.crops import VLM_JPEG_QUALITY
from docparse.render import fit_scale


def cpu_ms(step: Callable[[], object], repeat: int) -> float:
    """The least CPU time of ``repeat`` runs of ``step`` (the least: other work on the
    machine only ever adds)."""
    best = float("inf")
    for _ in range(repeat):
        started = time.thread_time()
        step()
        best = min(best, time.thread_time() - started)
    return best * 1000


def page_costs(page: pdfium.PdfPage, dpi: int, budget: int, repeat: int) -> dict[str, float]:
    width, height = page.get_size()
    full_scale = dpi / 72
    vlm_scale = fit_scale(width, height, full_scale, budget)
    full = page.render(scale=full_scale, rev_byteorder=True).to_numpy()
    vlm = page.render(scale=vlm_scale, rev_byteorder=True).to_numpy()
    buffer = io.BytesIO()
    Image.fromarray(full).save(buffer, format="PNG")
    png = buffer.getvalue()
    raw = np.frombuffer(png, dtype=np.uint8)
    return {
        "rasterise_at_dpi": cpu_ms(lambda: page.render(scale=full_scale, rev_byteorder=True).to_numpy(), repeat),
        "rasterise_at_budget": cpu_ms(lambda: page.render(scale=vlm_scale, rev_byteorder=True).to_numpy(), repeat),
        "png_decode_opencv": cpu_ms(lambda: cv2.imdecode(raw, cv2.IMREAD_COLOR), repeat),
        "png_decode_pillow": cpu_ms(lambda: np.asarray(Image.open(io.BytesIO(png)).convert("RGB")), repeat),
        "jpeg_encode_budget": cpu_ms(lambda: encode_jpeg(vlm, VLM_JPEG_QUALITY), repeat),
        "resize_to_budget": cpu_ms(lambda: cv2.resize(full, (vlm.shape[1], vlm.shape[0]), interpolation=cv2.INTER_CUBIC),
                                   repeat),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pixel_work", description=__doc__.splitlines()[0])
    parser.add_argument("pdf", type=Path)
    parser.add_argument("--dpi", type=int, default=144)
    parser.add_argument("--budget", type=int, default=1_605_632, help="the VLM's pixel budget (HPS_CROP_MAX_PIXELS)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    if not args.pdf.is_file():
        parser.error(f"{args.pdf}: no such file")
    document = pdfium.PdfDocument(args.pdf)
    try:
        rows = [page_costs(page, args.dpi, args.budget, args.repeat) for page in document]
    finally:
        document.close()
    summary = {
        step: {"p50_ms": round(statistics.median(r[step] for r in rows), 2),
               "p90_ms": round(sorted(r[step] for r in rows)[int(0.9 * (len(rows) - 1))], 2)}
        for step in rows[0]
    }
    print(json.dumps({"pdf": str(args.pdf), "pages": len(rows), "dpi": args.dpi, "budget": args.budget,
                      "cpu_ms": summary}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
