"""Running headers, footers and page numbers: the text a page carries for the reader's
orientation, not as part of the document's flow.

The layout model labels most of it (header, footer, number), but not all: a journal's
name at the top of every page often comes back as a text block, a page number as a
one-line paragraph. What gives those away is where they stand (the outer band of the
page) and that they come back: the same text, numbers aside, on two pages or more, or a
bare page number ("3", "- 3 -", "Page 3 of 10", "第 3 页"). They stay in each page's JSON
with their label; they are left out of the merged Markdown and never stop a paragraph or
a table from going on across the break.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Sequence

from docparse.responses import ParsingBlock

#: Labels that are page furniture whatever they say.
RUNNING_LABELS = frozenset({"header", "footer", "number", "header_image", "footer_image"})
MARGIN = 0.1  # the outer band of the page height, top and bottom, where running text stands
MIN_PAGES = 2  # text repeated on this many pages is running text
MAX_CHARS = 200  # longer text is body text, whatever repeats
# Labels whose blocks may be running text when they stand in the margin and repeat.
_NEVER_RUNNING = frozenset({"doc_title", "table", "image", "chart", "display_formula", "inline_formula", "seal"})
_DASHES = r"[\s\-–—·•|~]*"
_PAGE_NUMBER = re.compile(
    rf"^{_DASHES}(?:(?:page|p\.|pg\.?|seite|página|pagina)\s*)?(?:\d{{1,4}}|[ivxlc]{{1,4}})"
    rf"(?:\s*(?:/|of|von|de|sur)\s*\d{{1,4}})?{_DASHES}$",
    re.I,
)
_CJK_PAGE_NUMBER = re.compile(
    r"^[\s\-–—]*(?:共\s*\d{1,4}\s*页\s*[,，]?\s*)?第\s*[\d一二三四五六七八九十百零〇]{1,6}\s*页"
    r"(?:\s*[,，/]?\s*共\s*\d{1,4}\s*页)?[\s\-–—]*$"
)


def is_page_number(text: str) -> bool:
    """The text is nothing but a page number, in the usual dresses."""
    stripped = text.strip()
    return bool(stripped) and bool(_PAGE_NUMBER.match(stripped) or _CJK_PAGE_NUMBER.match(stripped))


def margin_zone(bbox: Sequence[int], page_height: int) -> str | None:
    """"top" or "bottom" when the box lies wholly in the page's outer band, else None."""
    if page_height <= 0 or len(bbox) != 4:
        return None
    band = page_height * MARGIN
    if bbox[3] <= band:
        return "top"
    if bbox[1] >= page_height - band:
        return "bottom"
    return None


def normalised(text: str) -> str:
    """The text as it repeats from page to page: case, spacing and numbers aside."""
    return " ".join(re.sub(r"\d+", "0", text.lower()).split())


def margin_text(block: ParsingBlock, page_height: int) -> bool:
    """The block is short text in the page's margin band: running text if it repeats,
    and never body text a paragraph or table goes on through."""
    return _candidate(block, page_height) is not None


def _candidate(block: ParsingBlock, page_height: int) -> tuple[str, str] | None:
    """(zone, normalised text) of a block that may be running text, else None."""
    text = block.block_content.strip()
    if block.block_label in _NEVER_RUNNING or not text or len(text) > MAX_CHARS:
        return None
    zone = margin_zone(block.block_bbox, page_height)
    return (zone, normalised(text)) if zone else None


def running_blocks(pages: Sequence[tuple[int, Sequence[ParsingBlock]]]) -> set[tuple[int, int]]:
    """(page position, block position) of every running block, given each parsed page's
    height and blocks (failed pages have none, so they count for nothing)."""
    found: set[tuple[int, int]] = set()
    seen_on: dict[tuple[str, str], set[int]] = defaultdict(set)
    candidates: dict[tuple[int, int], tuple[str, str]] = {}
    for p, (height, blocks) in enumerate(pages):
        for b, block in enumerate(blocks):
            if block.block_label in RUNNING_LABELS:
                found.add((p, b))
            elif (key := _candidate(block, height)) is not None:
                if is_page_number(block.block_content):
                    found.add((p, b))
                candidates[(p, b)] = key
                seen_on[key].add(p)
    found.update(at for at, key in candidates.items() if len(seen_on[key]) >= MIN_PAGES)
    return found
