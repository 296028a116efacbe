"""Plain data shared by the pipeline stages: layout boxes and recognition results."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Mapping

from docparse.errors import DocParseError
from docparse.responses import LayoutDetBox


class Task(str, enum.Enum):
    """What the recogniser does with a region."""

    TEXT = "text"
    TABLE = "table"
    FORMULA = "formula"
    IMAGE = "image"  # kept as a picture (crop returned), not recognised
    DROP = "drop"  # left out of the result (headers, footers, page numbers...)


#: The tasks whose regions go to the recogniser (the others are kept as pictures or dropped).
READ_TASKS = frozenset({Task.TEXT, Task.TABLE, Task.FORMULA})


@dataclass(frozen=True)
class LayoutBox:
    """One region found by a layout detector, in page-image pixel coordinates."""

    label: str
    score: float
    coordinate: tuple[float, float, float, float]  # x1, y1, x2, y2
    cls_id: int = -1
    order: int | None = None  # reading order, when the detector predicts one
    polygon: tuple[tuple[float, float], ...] | None = None

    def to_det_box(self) -> LayoutDetBox:
        """The PaddleX ``layout_det_res.boxes[]`` item (also what layout_detection sends)."""
        return LayoutDetBox(
            cls_id=self.cls_id,
            label=self.label,
            score=round(float(self.score), 6),
            coordinate=[round(float(v), 2) for v in self.coordinate],
            order=self.order,
            polygon_points=(
                [[round(x, 2), round(y, 2)] for x, y in self.polygon] if self.polygon is not None else None
            ),
        )

    @classmethod
    def from_det_box(cls, item: LayoutDetBox) -> "LayoutBox":
        polygon = item.polygon_points
        return cls(
            label=item.label,
            score=item.score,
            coordinate=tuple(item.coordinate),  # type: ignore[arg-type]
            cls_id=item.cls_id,
            order=item.order,
            polygon=tuple((x, y) for x, y in polygon) if polygon else None,
        )


@dataclass(frozen=True)
class LayoutParams:
    """Per-request layout options (PaddleX names); ``None`` means the model default."""

    threshold: float | dict[int, float] | None = None
    nms: bool | None = None
    unclip_ratio: float | tuple[float, float] | None = None
    merge_bboxes_mode: str | None = None


@dataclass(frozen=True)
class RecognitionParams:
    """Per-request generation options for the recogniser."""

    temperature: float | None = None
    top_p: float | None = None
    repetition_penalty: float | None = None
    max_new_tokens: int | None = None
    min_pixels: int | None = None
    max_pixels: int | None = None
    json_schema: Mapping[str, Any] | None = None  # information extraction: the answer's JSON Schema
    log_id: str = ""


@dataclass(frozen=True)
class RegionJob:
    """A region to recognise: its box on the page and what to do with it."""

    box: LayoutBox
    task: Task


@dataclass
class RegionResult:
    """What recognition made of one region. ``failure`` is set when it failed: its kind
    decides what a document whose regions all failed answers."""

    content: str = ""
    failure: DocParseError | None = None
    timings: dict[str, float] = field(default_factory=dict)
    source: str | None = None  # who read it: "text_layer" or the recognizer's name (set by the pipeline)

    @property
    def error(self) -> str | None:
        """The failure's message, as the page result shows it."""
        return None if self.failure is None else self.failure.message
