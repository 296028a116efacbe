"""The document's flow across page breaks: a table or a paragraph the next page goes on with.

One pass from the first page to the last keeps the block that is still open at the bottom
of the pages read so far (the last block of the flow: running text, ignored labels, empty
blocks, short margin text and "continued" notes are not part of it). When the next page's first block continues it, the
continuation's text is added to the open block, which stays open while a page holds
nothing else: a table over three pages becomes one table on the first. A failed page, or
a page with nothing to read, closes it: nothing is merged across.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from docparse.merge.model import MergeOptions, PageState, Slot
from docparse.merge.render import in_flow
from docparse.merge.running import margin_text
from docparse.merge.tables import merge_tables
from docparse.merge.text import continues, join_halves

#: Labels of body text, whose paragraphs may go on across a page break.
PARAGRAPH_LABELS = frozenset({"text", "abstract", "reference_content"})
TABLE_WIDTH_TOLERANCE = 0.1  # two halves of a table are as wide, within 10% (as PaddleX)
# A note that a table goes on, as a whole block: "Table 3 (continued)", "(cont'd)",
# "Continued on next page", "续表", "续表 3-1", "表 3（续）". Matched whole, so that body
# text that happens to say "continued" is never taken for one.
_CONTINUED = re.compile(
    r"(?:(?:table|tab\.|表)\s*[\w.\-]*\s*)?[（(]\s*(?:continued|cont['‘’]d|续|續)\s*[）)]"
    r"|(?:table\s*[\w.\-]*\s*)?(?:continued|cont['‘’]d)\.?"
    r"|continued\s+(?:on|from)\s+(?:the\s+)?(?:next|previous|following)\s+page\.?"
    r"|[续續]表\s*[\w.\-]*",
    re.I,
)


@dataclass
class _Open:
    """The block at the bottom of the flow so far, which the next page may continue."""

    slot: Slot
    state: PageState  # the page it stands on
    ends: bool  # the last page it reached said its paragraph ended (markdown isEnd)


def _aside(slot: Slot, state: PageState) -> bool:
    """Shown, but not body text the seam runs through: short text in the margin band (a
    running header printed on one page only) or a "continued" note. It stays in the
    Markdown, after the merged table or paragraph."""
    if margin_text(slot.block, state.page.prunedResult.height):
        return True
    return slot.label != "table" and _CONTINUED.fullmatch(slot.content.strip()) is not None


def _flow(state: PageState, ignored_labels: frozenset[str]) -> list[Slot]:
    """The page's body blocks in order (none for a failed page)."""
    if state.failed:
        return []
    return [slot for slot in state.slots if in_flow(slot, ignored_labels) and not _aside(slot, state)]


def _paragraph(slot: Slot) -> bool:
    return slot.label in PARAGRAPH_LABELS and not slot.block.error


def _table(slot: Slot) -> bool:
    return slot.label == "table" and not slot.block.error


def _width_share(slot: Slot, state: PageState) -> float:
    bbox, page_width = slot.block.block_bbox, state.page.prunedResult.width
    return (bbox[2] - bbox[0]) / page_width if len(bbox) == 4 and page_width > 0 else 0.0


def _as_wide(open_: _Open, first: Slot, state: PageState) -> bool:
    before, after = _width_share(open_.slot, open_.state), _width_share(first, state)
    return min(before, after) > 0 and abs(before - after) / min(before, after) < TABLE_WIDTH_TOLERANCE


def _joined(open_: _Open, first: Slot, state: PageState, options: MergeOptions) -> str | None:
    """The open block's text with ``first`` added, or None when ``first`` does not go on
    with it or that rule is off. A paragraph that goes on but is not joined marks both
    pages (their isEnd and isStart say so)."""
    before = open_.slot
    if _table(before) and _table(first):
        if options.merge_tables and _as_wide(open_, first, state):
            return merge_tables(before.content, first.content)
        return None
    if not (_paragraph(before) and _paragraph(first)):
        return None
    if not continues(before.content, first.content, open_.ends, state.page.markdown.isStart):
        return None
    if options.merge_paragraphs:
        return join_halves(before.content, first.content)
    open_.state.ends_inside = state.starts_inside = True
    return None


def merge_across(states: Sequence[PageState], options: MergeOptions, ignored_labels: frozenset[str]) -> None:
    """Move every continued table and paragraph into the block where it starts: that
    block's text grows, the continuation is marked moved."""
    open_: _Open | None = None
    for state in states:
        flow = _flow(state, ignored_labels)
        if not flow:
            open_ = None
            continue
        if open_ is not None and (joined := _joined(open_, flow[0], state, options)) is not None:
            open_.slot.content, flow[0].moved = joined, True
            flow = flow[1:]
            if not flow:  # the continuation filled the page: still open below it
                open_.ends = state.page.markdown.isEnd
                continue
        open_ = _Open(flow[-1], state, state.page.markdown.isEnd)
