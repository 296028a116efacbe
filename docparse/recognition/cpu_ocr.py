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
import logging
import threading
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from docparse.errors import InternalError, ModelSetupError, describe
from docparse.page_images import PageSource, pixels_of
from docparse.recognition.lines import TextLine, assign_lines, region_content
from docparse.types import READ_TASKS, RecognitionParams, RegionJob, RegionResult

log = logging.getLogger("docparse.cpu_ocr")

MODEL_FILES = {
    "Det.model_path": "PP-OCRv6_det_small.onnx",
    "Rec.model_path": "PP-OCRv6_rec_small.onnx",
}


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
    # A born-digital PDF's text layer is exact where OCR guesses, in a millisecond instead of
    # seconds; this engine reads tables and formulas as lines of text too, so the text
    # layer's lines serve all three (docparse.text_layer).
    text_layer_by_default = True
    text_layer_tasks = READ_TASKS

    def __init__(self, engine: Any | None = None) -> None:
        self._engine = engine if engine is not None else load_engine()
        self._lock = threading.Lock()

    def read_page(self, page: np.ndarray, abandoned: threading.Event | None = None) -> list[TextLine]:
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
            lines.append(TextLine(str(text), (xs.min(), ys.min(), xs.max(), ys.max())))
        return lines

    async def recognize(
        self, page: PageSource, jobs: Sequence[RegionJob], params: RecognitionParams
    ) -> list[RegionResult]:
        """One result per job. Generation options in ``params`` do not apply to OCR."""
        if not any(needs_ocr(job) for job in jobs):
            return [RegionResult("") for _ in jobs]
        started = time.perf_counter()
        abandoned = threading.Event()
        try:
            lines = await asyncio.to_thread(self.read_page, pixels_of(page), abandoned)
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


