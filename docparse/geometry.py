"""Axis-aligned boxes ``(x1, y1, x2, y2)`` in page pixels: the few measures every
stage needs (detectors clip and de-duplicate, the CPU OCR assigns lines to regions)."""

from __future__ import annotations

from typing import Sequence

Box = tuple[float, float, float, float]


def area(box: Sequence[float]) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def intersection(a: Sequence[float], b: Sequence[float]) -> float:
    """Area shared by two boxes (0 when they do not overlap)."""
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union."""
    shared = intersection(a, b)
    return shared / (area(a) + area(b) - shared) if shared > 0 else 0.0


def clip_to_page(coordinate: Sequence[float], width: int, height: int) -> Box | None:
    """The box clipped to a ``width`` x ``height`` page; ``None`` when nothing of it is
    left on the page."""
    x1, y1, x2, y2 = (float(v) for v in coordinate)
    x1, x2 = min(max(x1, 0.0), width), min(max(x2, 0.0), width)
    y1, y2 = min(max(y1, 0.0), height), min(max(y2, 0.0), height)
    if x2 <= x1 or y2 <= y1:
        return None
    return x1, y1, x2, y2
