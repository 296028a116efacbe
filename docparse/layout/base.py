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

