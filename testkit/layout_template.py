"""Where the generated test documents draw each kind of block, as page fractions.

The stand-in layout model (``tiny_doclayout.py``) predicts exactly these boxes on every
page, and ``documents.py`` draws matching content in them, so a test can tell which
region became which Markdown block and which prompt the VLM stand-in received.
(label, (x1, y1, x2, y2)) with coordinates as fractions of page width and height,
listed in reading order.
"""

from __future__ import annotations

TEMPLATE: list[tuple[str, tuple[float, float, float, float]]] = [
    ("header", (0.08, 0.02, 0.92, 0.05)),
    ("doc_title", (0.10, 0.07, 0.90, 0.13)),
    ("text", (0.10, 0.15, 0.90, 0.30)),
    ("paragraph_title", (0.10, 0.32, 0.60, 0.36)),
    ("table", (0.10, 0.38, 0.90, 0.58)),
    ("display_formula", (0.25, 0.61, 0.75, 0.69)),
    ("image", (0.25, 0.72, 0.75, 0.90)),
    ("number", (0.45, 0.95, 0.55, 0.98)),
]

# A box the model also predicts, with a low score, so tests can see layoutThreshold work.
LOW_SCORE_BOX: tuple[str, tuple[float, float, float, float], float] = (
    "text",
    (0.62, 0.32, 0.90, 0.36),
    0.30,
)
MAIN_SCORE = 0.95
