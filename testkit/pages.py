"""Generated parsed pages: page results as the pipeline makes them, from a list of blocks.

The cross-page rules (docparse.merge) read what the pipeline answers, so these pages are
built by the pipeline's own assembler (``docparse.assemble.build_page_result``): the
reading order is the order given, ``block_order`` and the Markdown follow its rules.
Blocks stack down the page body; running text stands in the top or bottom margin.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Sequence, Union

import numpy as np

from docparse.assemble import Block, PageContext, build_page_result, failed_page_result, image_path_for
from docparse.errors import RecognitionError
from docparse.protocol import DEFAULT_MARKDOWN_IGNORE_LABELS
from docparse.recognition.tasks import DEFAULT_LABEL_TASKS, UNKNOWN_LABEL_TASK
from docparse.responses import ModelSettings, PageResult
from docparse.types import LayoutBox, RegionResult, Task

WIDTH, HEIGHT = 1000, 1400
BODY_TOP = 180  # below the top margin (10% of 1400 is 140)
GAP = 20
MARGIN_EDGE = 40  # running text's distance from the page's top or bottom edge
IGNORED = frozenset(DEFAULT_MARKDOWN_IGNORE_LABELS)
SETTINGS = ModelSettings(use_layout_detection=True, layout_model="generated", recognizer="generated")
FIGURE_DATA = "R0lGODlhAQABAAAAACw="  # what a figure crop's base64 looks like; never decoded

Cell = Union[str, tuple[str, int]]  # text, or (text, colspan)


@dataclass(frozen=True)
class Spec:
    """One block to put on a page."""

    label: str
    content: str = ""
    height: int = 40
    at: str = "body"  # "body", or "top" / "bottom" for the margins
    left: int = 100
    right: int = 900
    error: str | None = None
    task: Task | None = None  # default: the label's task (DROP labels are not in the Markdown)


def text(content: str, label: str = "text", height: int = 60, **kw) -> Spec:
    return Spec(label, content, height, **kw)


def title(content: str, height: int = 40, label: str = "paragraph_title") -> Spec:
    return Spec(label, content, height)


def figure(height: int = 300, left: int = 200, right: int = 800) -> Spec:
    return Spec("image", "", height, left=left, right=right)


def margin(content: str, at: str = "top", label: str = "text") -> Spec:
    """Running text in a margin, read as the label's task (``header`` is read as text here:
    what a pipeline configured to read headers, or PaddleX, would answer)."""
    return Spec(label, content, 30, at=at, task=Task.TEXT)


def _cell_html(cell: Cell, tag: str) -> str:
    content, span = (cell, 1) if isinstance(cell, str) else cell
    attrs = f' colspan="{span}"' if span > 1 else ""
    return f"<{tag}{attrs}>{html.escape(content)}</{tag}>"


def html_table(rows: Sequence[Sequence[Cell]], header: Sequence[Cell] | None = None) -> str:
    """An HTML table as GLM-OCR writes one: rows of cells, the header in <th>."""
    lines = ["<tr>" + "".join(_cell_html(c, "th") for c in header) + "</tr>"] if header else []
    lines += ["<tr>" + "".join(_cell_html(c, "td") for c in row) + "</tr>" for row in rows]
    return "<table>" + "".join(lines) + "</table>"


def pipe_table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    """A Markdown pipe table (its first line is a header, as the syntax requires)."""
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def table(content: str, height: int = 200, left: int = 100, right: int = 900) -> Spec:
    return Spec("table", content, height, left=left, right=right)


def _boxes(specs: Sequence[Spec], height: int) -> list[tuple[int, int, int, int]]:
    boxes, y = [], BODY_TOP
    for spec in specs:
        if spec.at == "top":
            top = MARGIN_EDGE
        elif spec.at == "bottom":
            top = height - MARGIN_EDGE - spec.height
        else:
            top, y = y, y + spec.height + GAP
        boxes.append((spec.left, top, spec.right, top + spec.height))
    return boxes


def _block(block_id: int, spec: Spec, coordinate: tuple[int, int, int, int]) -> Block:
    box = LayoutBox(spec.label, 0.9, tuple(float(v) for v in coordinate))  # type: ignore[arg-type]
    task = spec.task or DEFAULT_LABEL_TASKS.get(spec.label, UNKNOWN_LABEL_TASK)
    failure = RecognitionError(spec.error) if spec.error else None
    return Block(block_id, box, task, RegionResult(spec.content, failure),
                 image_path_for(box) if task is Task.IMAGE else None)


def page(specs: Sequence[Spec], index: int = 0, width: int = WIDTH, height: int = HEIGHT,
         ignored: frozenset[str] = IGNORED, prettify: bool = True) -> PageResult:
    """One parsed page with these blocks, in this reading order; figures come with a
    (fake) crop in markdown.images."""
    blocks = [_block(i, spec, box) for i, (spec, box) in enumerate(zip(specs, _boxes(specs, height)))]
    context = PageContext(index, width, height, SETTINGS, ignored, prettify, return_images=False, visualize=False)
    result = build_page_result(np.zeros((1, 1, 3), dtype=np.uint8), blocks, context)
    images = {block.image_path: FIGURE_DATA for block in blocks if block.image_path}
    return result.model_copy(update={"markdown": result.markdown.model_copy(update={"images": images})})


def failed(index: int, message: str = "layout detection failed") -> PageResult:
    return failed_page_result(index, WIDTH, HEIGHT, SETTINGS, message)


def document(*pages: Sequence[Spec] | PageResult) -> list[PageResult]:
    """Pages in order, each a list of specs (or a ready page result such as ``failed``),
    indexed 0, 1, 2…."""
    return [p.model_copy(update={"prunedResult": p.prunedResult.model_copy(update={"page_index": i})})
            if isinstance(p, PageResult) else page(p, index=i) for i, p in enumerate(pages)]
