"""The layout detector interface: a batch of page images in, one box list per page out."""

from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np

from docparse.types import LayoutBox, LayoutParams


class LayoutDetector(Protocol):
    """Finds layout regions. One call serves a whole (dynamic) batch of pages."""

    name: str

    def detect(
        self, pages: Sequence[np.ndarray], params: LayoutParams
    ) -> list[list[LayoutBox]]:
        """``pages`` are RGB ``uint8 [H, W, 3]`` arrays of any sizes; boxes are in each
        page's pixel coordinates."""
        ...


Box = tuple[float, float, float, float]


def clip_to_page(coordinate: Sequence[float], width: int, height: int) -> Box | None:
    """``(x1, y1, x2, y2)`` clipped to a ``width`` x ``height`` page; ``None`` when
    nothing of the box is left on the page. Every detector's boxes pass through here."""
    x1, y1, x2, y2 = (float(v) for v in coordinate)
    x1, x2 = min(max(x1, 0.0), width), min(max(x2, 0.0), width)
    y1, y2 = min(max(y1, 0.0), height), min(max(y2, 0.0), height)
    if x2 <= x1 or y2 <= y1:
        return None
    return x1, y1, x2, y2
