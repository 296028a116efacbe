"""Recognition on the CPU with PP-OCRv6 (the ONNX models inside the ``rapidocr`` wheel).

Text lines are detected and read once per page, then each line goes to the region that
holds most of it: OCR on each region's crop separately was 10x slower, because the
detector upscales small crops. Only the model files packaged with the wheel are used
(their paths are passed explicitly, so rapidocr never looks for a download).

The direction classifier is not run: on upright generated pages it turned some upright
lines upside down, garbling them, and it costs about half the page time. Rotated text is
therefore not supported. RapidOCR keeps per-call state on the engine (``__call__``
updates its options), so calls are serialised with a lock; pages of a cancelled request
that are still waiting for it are dropped, not read (2.6 s a page would hold the others up).
"""

from __future__ import annotations

import asyncio
import html
import logging
import threading
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from docparse.errors import InternalError, ModelSetupError, describe
from docparse.geometry import Box, area, intersection
from docparse.types import READ_TASKS, LayoutBox, RecognitionParams, RegionJob, RegionResult, Task

log = logging.getLogger("docparse.cpu_ocr")

MODEL_FILES = {
    "Det.model_path": "PP-OCRv6_det_small.onnx",
    "Rec.model_path": "PP-OCRv6_rec_small.onnx",
}
# Lines overlapping vertically by at least this share of the shorter one are one row.
ROW_OVERLAP = 0.5


@dataclass(frozen=True)
class OcrLine:
    """One text line read on the page, with its axis-aligned box in page pixels."""

    text: str
    box: Box


def packaged_model_paths() -> dict[str, str]:
    """RapidOCR parameters pointing at the model files inside the installed wheel."""
    try:
        import rapidocr
    except ImportError as exc:
        raise ModelSetupError(
            "rapidocr is not installed; the cpu recognizer needs it: pip install -e '.[cpu]'."
        ) from exc
    models = Path(rapidocr.__file__).resolve().parent / "models"
    paths = {key: models / name for key, name in MODEL_FILES.items()}
    missing = [str(path) for path in paths.values() if not path.is_file()]
    if missing:
        raise ModelSetupError(
            f"PP-OCRv6 model file(s) {', '.join(missing)} missing from the installed rapidocr "
            "package; reinstall rapidocr==3.10.0 (the models ship inside its wheel)."
        )
    return {key: str(path) for key, path in paths.items()}


def load_engine() -> Any:
    """A RapidOCR engine on onnxruntime with the packaged models and no direction classifier."""
    params = {
        "Global.log_level": "warning",
        "Global.use_cls": False,
        **packaged_model_paths(),
    }
    try:
        from rapidocr import RapidOCR

        return RapidOCR(params=params)
    except Exception as exc:  # noqa: BLE001 - any failure here is a setup problem
        raise ModelSetupError(
            f"RapidOCR could not be set up with {params}: {type(exc).__name__}: {exc}"
        ) from exc


class CpuOcrRecognizer:
    """Reads the TEXT, TABLE and FORMULA regions of a page from one OCR pass over it."""

    name = "cpu:pp-ocrv6"
    supports_extraction = False  # it reads lines of text; it cannot answer a schema

    def __init__(self, engine: Any | None = None) -> None:
        self._engine = engine if engine is not None else load_engine()
        self._lock = threading.Lock()

    def read_page(self, page: np.ndarray, abandoned: threading.Event | None = None) -> list[OcrLine]:
        """Every text line on an RGB page (blocking; CPU-bound). Pages of every request
        wait here for the one engine; one whose request was abandoned meanwhile
        (``abandoned`` set) is not read: nothing, at once."""
        bgr = np.ascontiguousarray(page[:, :, ::-1])  # RapidOCR reads arrays as BGR
        with self._lock:
            if abandoned is not None and abandoned.is_set():
                return []
            output = self._engine(bgr)
        if output.boxes is None or output.txts is None:
            return []  # nothing found on the page
        lines = []
        for points, text in zip(output.boxes, output.txts):
            xs, ys = np.asarray(points, dtype=np.float64).reshape(-1, 2).T
            lines.append(OcrLine(str(text), (xs.min(), ys.min(), xs.max(), ys.max())))
        return lines

    async def recognize(
        self, page: np.ndarray, jobs: Sequence[RegionJob], params: RecognitionParams
    ) -> list[RegionResult]:
        """One result per job. Generation options in ``params`` do not apply to OCR."""
        if not any(needs_ocr(job) for job in jobs):
            return [RegionResult("") for _ in jobs]
        started = time.perf_counter()
        abandoned = threading.Event()
        try:
            lines = await asyncio.to_thread(self.read_page, page, abandoned)
        except asyncio.CancelledError:
            abandoned.set()  # the thread cannot be stopped, but it need not read the page
            raise
        except Exception as exc:  # noqa: BLE001 - the page's failure goes into its results
            log.exception("logId=%s OCR of the page failed", params.log_id or "-")
            failure = InternalError(f"CPU OCR failed on the page: {describe(exc)}")
            seconds = time.perf_counter() - started
            return [
                RegionResult(failure=failure, timings={"seconds": seconds})
                if needs_ocr(job) else RegionResult("")
                for job in jobs
            ]
        seconds = time.perf_counter() - started  # shared by all regions of the page
        owned = assign_lines(lines, [job.box for job in jobs])
        return [
            RegionResult(region_content(job.task, owned[i]), timings={"seconds": seconds})
            if needs_ocr(job) else RegionResult("")
            for i, job in enumerate(jobs)
        ]

    async def ensure_available(self) -> None:
        """In-process: available whenever the process is."""

    async def aclose(self) -> None:
        """Nothing to release: the engine lives as long as the process."""


def needs_ocr(job: RegionJob) -> bool:
    return job.task in READ_TASKS


def assign_lines(lines: Sequence[OcrLine], boxes: Sequence[LayoutBox]) -> list[list[OcrLine]]:
    """The lines of each box: a line goes to the box holding most of its area (more than
    half of it), or to none. Every box competes, IMAGE and DROP ones too, so a header's
    line is not read into a neighbouring paragraph."""
    owned: list[list[OcrLine]] = [[] for _ in boxes]
    for line in lines:
        line_area = area(line.box)
        if line_area <= 0 or not boxes:
            continue
        shares = [intersection(line.box, box.coordinate) / line_area for box in boxes]
        best = int(np.argmax(shares))
        if shares[best] > 0.5:
            owned[best].append(line)
    return owned


def region_content(task: Task, lines: Sequence[OcrLine]) -> str:
    """TABLE: an HTML table when rows and columns are clear, else the text; otherwise
    the text."""
    rows = group_rows(lines)
    if task is Task.TABLE and (table := table_html(rows)) is not None:
        return table
    return "\n".join(join_words([line.text for line in row]) for row in rows)


def group_rows(lines: Sequence[OcrLine]) -> list[list[OcrLine]]:
    """Lines in reading order: rows top to bottom (lines overlapping vertically by at
    least ``ROW_OVERLAP`` of the shorter one share a row), each row left to right."""
    rows: list[list[OcrLine]] = []
    for line in sorted(lines, key=lambda l: (l.box[1] + l.box[3]) / 2):
        if rows and _same_row(rows[-1], line):
            rows[-1].append(line)
        else:
            rows.append([line])
    return [sorted(row, key=lambda l: l.box[0]) for row in rows]


def _same_row(row: list[OcrLine], line: OcrLine) -> bool:
    top, bottom = min(l.box[1] for l in row), max(l.box[3] for l in row)
    overlap = min(bottom, line.box[3]) - max(top, line.box[1])
    shorter = min(bottom - top, line.box[3] - line.box[1])
    return shorter > 0 and overlap >= ROW_OVERLAP * shorter


def join_words(parts: Sequence[str]) -> str:
    """``parts`` joined by spaces, except between two CJK characters."""
    text = ""
    for part in (p.strip() for p in parts):
        if not part:
            continue
        if text and not (_is_cjk(text[-1]) and _is_cjk(part[0])):
            text += " "
        text += part
    return text


def _is_cjk(char: str) -> bool:
    return unicodedata.east_asian_width(char) in ("W", "F")


def table_html(rows: list[list[OcrLine]]) -> str | None:
    """An HTML table with one cell per line, or ``None`` when the lines do not form a
    grid: fewer than 2 rows or 2 columns, or two lines of one row in the same column."""
    columns = column_spans([line for row in rows for line in row])
    if len(rows) < 2 or len(columns) < 2:
        return None
    grid = []
    for row in rows:
        cells: list[str | None] = [None] * len(columns)
        for line in row:
            column = next(i for i, (x1, x2) in enumerate(columns) if x1 <= line.box[0] <= x2)
            if cells[column] is not None:
                return None
            cells[column] = line.text.strip()
        grid.append(cells)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell or '')}</td>" for cell in cells) + "</tr>"
        for cells in grid
    )
    return f"<table>{body}</table>"


def column_spans(lines: Sequence[OcrLine]) -> list[tuple[float, float]]:
    """Columns as the unions of lines' horizontal spans that overlap, left to right."""
    spans: list[tuple[float, float]] = []
    for x1, x2 in sorted((line.box[0], line.box[2]) for line in lines):
        if spans and x1 <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], x2))
        else:
            spans.append((x1, x2))
    return spans

