"""A restructured block or page back to Markdown, by the page assembler's own rules.

Each block is rendered by ``docparse.assemble.block_markdown`` (failed regions as a
comment, figures as image links, formulas in ``$$``, tables and text as they are), so a
restructured page reads like one the pipeline made; only a relevelled title is written
here, with its new number of ``#``.
"""

from __future__ import annotations

import re
from typing import Mapping

from docparse.assemble import Block, block_markdown
from docparse.errors import RecognitionError
from docparse.merge.model import PageState, Slot
from docparse.recognition.tasks import DEFAULT_LABEL_TASKS, UNKNOWN_LABEL_TASK
from docparse.types import LayoutBox, RegionResult, Task

_HEADING_MARKS = re.compile(r"^#+\s*")


def _assemble_block(slot: Slot, image_key: str | None) -> Block:
    """The assembler's view of a block: its task is its label's default task (a block
    with a figure crop is a figure), its error a recognition failure."""
    block = slot.block
    task = Task.IMAGE if block.block_image else DEFAULT_LABEL_TASKS.get(block.block_label, UNKNOWN_LABEL_TASK)
    failure = RecognitionError(block.error) if block.error else None
    x1, y1, x2, y2 = (list(block.block_bbox) + [0, 0, 0, 0])[:4]
    box = LayoutBox(block.block_label, 1.0, (x1, y1, x2, y2))
    return Block(block.block_id, box, task, RegionResult(slot.content, failure), image_key or block.block_image)


def slot_markdown(slot: Slot, image_key: str | None = None) -> str:
    """The block's Markdown ('' leaves it out); ``image_key`` renames its figure."""
    if slot.level is not None and not slot.block.error:
        title = " ".join(_HEADING_MARKS.sub("", slot.content.strip()).split())
        return f"{'#' * slot.level} {title}" if title else ""
    return block_markdown(_assemble_block(slot, image_key))


def shown(slot: Slot, ignored_labels: frozenset[str], drop_running: bool) -> bool:
    """The block belongs in the Markdown: not moved to an earlier page, not of an
    ignored label, not running text being dropped (it may still render empty)."""
    return not slot.moved and slot.label not in ignored_labels and not (drop_running and slot.running)


def in_flow(slot: Slot, ignored_labels: frozenset[str]) -> bool:
    """The block is part of the document's running text: shown and not empty, and never
    running text (a header between two halves of a paragraph does not part them)."""
    return shown(slot, ignored_labels, True) and bool(slot_markdown(slot))


def page_markdown(state: PageState, ignored_labels: frozenset[str], drop_running: bool, prettify: bool,
                  renames: Mapping[str, str] | None = None) -> str:
    """The page's Markdown after restructuring, blocks in their order."""
    renames = renames or {}
    parts = [
        md
        for slot in state.slots
        if shown(slot, ignored_labels, drop_running)
        for md in [slot_markdown(slot, renames.get(slot.block.block_image or ""))]
        if md
    ]
    return ("\n\n" if prettify else "\n").join(parts)
