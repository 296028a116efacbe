"""PP-DocLayout layout detection through PaddleX (``paddlex.create_model``).

The model directory is checked before PaddleX is imported: PaddleX downloads weights
from a model hub when it cannot use a directory, which fails slowly and obscurely on a
server without internet access. Weights are never downloaded at run time.

Thread safety: one detector serves one Triton model instance, and Triton calls
``detect`` from one thread per instance. PaddleX predictors keep per-call state (the
batch size, the Paddle Inference handles), so do not share a detector between threads.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from docparse.errors import ModelSetupError
from docparse.geometry import clip_to_page
from docparse.types import LayoutBox, LayoutParams

log = logging.getLogger(__name__)

SUPPORTED_MODELS = ("PP-DocLayoutV3", "PP-DocLayoutV2", "PP-DocLayout-L", "PP-DocLayout_plus-L")
# Models whose boxes PaddleX returns sorted by the model's own reading-order prediction.
READING_ORDER_MODELS = frozenset({"PP-DocLayoutV3", "PP-DocLayoutV2"})

_HOW_TO_GET = (
    "Download the {name} inference model (PaddleOCR / PaddleX model list) and set "
    "HPS_LAYOUT_MODEL_DIR to its folder"
)


def check_model_dir(model_name: str, model_dir: Path | str | None) -> Path:
    """The model directory, or ``ModelSetupError`` naming it and what is missing."""
    if model_name not in SUPPORTED_MODELS:
        raise ModelSetupError(
            f"Unknown layout model {model_name!r}; supported: {', '.join(SUPPORTED_MODELS)}. "
            "Set HPS_LAYOUT_MODEL_NAME to one of them."
        )
    how_to_get = _HOW_TO_GET.format(name=model_name)
    if model_dir is None:
        raise ModelSetupError(
            f"HPS_LAYOUT_MODEL_DIR is not set; weights are never downloaded at run time. "
            f"{how_to_get}."
        )
    directory = Path(model_dir)
    if not directory.is_dir():
        raise ModelSetupError(
            f"Layout model directory {directory} (HPS_LAYOUT_MODEL_DIR) does not exist or is "
            f"not a directory. {how_to_get}."
        )
    missing = []
    if not (directory / "inference.yml").is_file():
        missing.append("inference.yml")
    if not any((directory / f).is_file() for f in ("inference.json", "inference.pdmodel")):
        missing.append("inference.json (or inference.pdmodel)")
    if not (directory / "inference.pdiparams").is_file():
        missing.append("inference.pdiparams")
    if missing:
        raise ModelSetupError(
            f"Layout model directory {directory} is missing {', '.join(missing)}. "
            f"It must hold a PaddleX inference model: {how_to_get}."
        )
    found = _configured_model_name(directory / "inference.yml")
    if found != model_name:
        raise ModelSetupError(
            f"Layout model directory {directory} holds model {found!r} (Global.model_name in "
            f"its inference.yml) but HPS_LAYOUT_MODEL_NAME is {model_name!r}; point "
            "HPS_LAYOUT_MODEL_DIR at the matching model or change the name."
        )
    return directory


def _configured_model_name(path: Path) -> str | None:
    """``Global.model_name`` of an ``inference.yml``."""
    try:
        import yaml  # comes with paddlex
    except ImportError as exc:
        raise ModelSetupError(
            "PyYAML is not installed; install the PaddleX layout backend with "
            "pip install -e '.[paddle]'."
        ) from exc
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ModelSetupError(f"Cannot read {path}: {exc}") from exc
    if not isinstance(config, dict) or not isinstance(config.get("Global"), dict):
        raise ModelSetupError(f"{path} has no Global section; is it a PaddleX inference.yml?")
    return config["Global"].get("model_name")


def predict_options(params: LayoutParams) -> dict[str, Any]:
    """PaddleX ``predict`` keywords for the options that are set.

    PaddleX tests ``isinstance(threshold, float)`` and ``isinstance(ratio, float)``,
    so whole numbers from JSON are turned into floats here.
    """
    options: dict[str, Any] = {}
    if params.threshold is not None:
        threshold = params.threshold
        options["threshold"] = (
            {int(k): float(v) for k, v in threshold.items()}
            if isinstance(threshold, dict)
            else float(threshold)
        )
    if params.nms is not None:
        options["layout_nms"] = params.nms
    if params.unclip_ratio is not None:
        options["layout_unclip_ratio"] = _unclip_ratio(params.unclip_ratio)
    if params.merge_bboxes_mode is not None:
        options["layout_merge_bboxes_mode"] = params.merge_bboxes_mode
    return options


def _unclip_ratio(ratio: Any) -> Any:
    if isinstance(ratio, dict):
        return {int(k): tuple(float(v) for v in pair) for k, pair in ratio.items()}
    if isinstance(ratio, (list, tuple)):
        return tuple(float(v) for v in ratio)
    return float(ratio)


class PaddlexLayoutDetector:
    """A PP-DocLayout model loaded from a local directory with PaddleX."""

    def __init__(
        self,
        model_name: str,
        model_dir: Path | str | None,
        device: str = "cpu",
        batch_size: int = 8,
    ) -> None:
        self.name = model_name
        self.model_dir = check_model_dir(model_name, model_dir)
        self.device = device
        self.batch_size = batch_size
        self._reading_order = model_name in READING_ORDER_MODELS
        self._model = self._load()

    def _load(self) -> Any:
        # Must be set before paddlex is imported: it skips probing model hubs.
        os.environ.setdefault("PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK", "True")
        started = time.monotonic()
        try:
            from paddlex import create_model

            # run_mode "paddle": PaddleX picks oneDNN on CPU by default, which paddle
            # 3.3.1 cannot run for some models (ConvertPirAttribute2RuntimeAttribute).
            model = create_model(
                self.name,
                model_dir=str(self.model_dir),
                device=self.device,
                batch_size=self.batch_size,
                engine_config={"run_mode": "paddle"},
            )
        except Exception as exc:  # noqa: BLE001 - any failure here is a setup problem
            raise ModelSetupError(
                f"PaddleX could not load layout model {self.name} from {self.model_dir} "
                f"on {self.device}: {type(exc).__name__}: {exc}"
            ) from exc
        log.info(
            "layout model %s loaded from %s on %s in %.1f s",
            self.name, self.model_dir, self.device, time.monotonic() - started,
        )
        return model

    def detect(self, pages: Sequence[np.ndarray], params: LayoutParams) -> list[list[LayoutBox]]:
        """One PaddleX ``predict`` call for all ``pages`` (RGB), in forward passes of at
        most ``batch_size`` pages."""
        if not pages:
            return []
        # PaddleX reads numpy arrays as BGR (the cv2 convention) and converts to RGB.
        images = [np.ascontiguousarray(page[:, :, ::-1]) for page in pages]
        results = list(
            self._model.predict(
                images, batch_size=min(len(images), self.batch_size), **predict_options(params)
            )
        )
        if len(results) != len(pages):
            raise RuntimeError(f"PaddleX returned {len(results)} results for {len(pages)} pages")
        return [
            layout_boxes(result["boxes"], page.shape[1], page.shape[0], self._reading_order)
            for result, page in zip(results, pages)
        ]


def layout_boxes(items: list[dict], width: int, height: int, reading_order: bool) -> list[LayoutBox]:
    """PaddleX box dicts as LayoutBoxes clipped to a ``width`` x ``height`` page.

    With ``reading_order`` (V2/V3) PaddleX has already sorted the list by the model's
    reading-order prediction; that position becomes ``order`` (1-based) for every box,
    whereas PaddleX's own ``order`` leaves headers, tables, images... unnumbered.
    """
    boxes = []
    for item in items:
        coordinate = clip_to_page(item["coordinate"], width, height)
        if coordinate is None:
            continue
        polygon = item.get("polygon_points")
        boxes.append(
            LayoutBox(
                label=str(item["label"]),
                score=float(item["score"]),
                coordinate=coordinate,
                cls_id=int(item["cls_id"]),
                order=len(boxes) + 1 if reading_order else None,
                polygon=_clip_polygon(polygon, width, height) if polygon is not None else None,
            )
        )
    return boxes


def _clip_polygon(points: Any, width: int, height: int) -> tuple[tuple[float, float], ...]:
    array = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    array[:, 0] = array[:, 0].clip(0, width)
    array[:, 1] = array[:, 1].clip(0, height)
    return tuple((float(x), float(y)) for x, y in array)
