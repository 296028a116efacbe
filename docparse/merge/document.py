"""The pages as one document: one Markdown text, one set of figures, one page result.

Figure crops are keyed by their box (``imgs/img_in_image_box_x1_y1_x2_y2.jpg``), so two
pages with a figure in the same place share a key; in one document the later page's
figure is renamed (``imgs/p3_img_in_image_box_…``), in its link and in the JSON, rather
than one figure silently replacing the other. A failed page keeps its place as a comment.
"""

from __future__ import annotations

import posixpath
from typing import Sequence

from docparse.merge.model import MergedDocument, PageState
from docparse.merge.render import page_markdown
from docparse.responses import LayoutDetResult, MarkdownResult, PageResult, PrunedResult, RegionCounts


def figure_renames(states: Sequence[PageState]) -> list[dict[str, str]]:
    """Per page, the figure keys an earlier page already uses → this page's own key."""
    first_page: dict[str, int] = {}
    renames: list[dict[str, str]] = []
    for position, state in enumerate(states):
        mine: dict[str, str] = {}
        for slot in state.slots:
            key = slot.block.block_image
            if key and first_page.setdefault(key, position) != position:
                folder, name = posixpath.split(key)
                mine[key] = posixpath.join(folder, f"p{state.page.prunedResult.page_index + 1}_{name}")
        renames.append(mine)
    return renames


def _failed_note(page: PageResult) -> str:
    """A failed page's place in the document: its own Markdown (the pipeline writes this
    comment there), or the same comment for a page that came without one."""
    if page.markdown.text:
        return page.markdown.text
    message = (page.prunedResult.error or "").replace("--", "- -").replace("\n", " ")
    return f"<!-- page {page.prunedResult.page_index + 1} could not be parsed: {message} -->"


def merged_document(states: Sequence[PageState], ignored_labels: frozenset[str], drop_running: bool,
                    prettify: bool) -> MergedDocument:
    """Every page's Markdown in order (empty pages leave no gap), and all their figures."""
    renames = figure_renames(states)
    parts, images = [], {}
    for state, mine in zip(states, renames):
        text = _failed_note(state.page) if state.failed else page_markdown(
            state, ignored_labels, drop_running, prettify, mine)
        if text:
            parts.append(text)
        images.update({mine.get(key, key): data for key, data in state.page.markdown.images.items()})
    return MergedDocument(("\n\n" if prettify else "\n").join(parts), images)


def _combined_blocks(pages: Sequence[PageResult], renames: Sequence[dict[str, str]]) -> list:
    """Every page's blocks in one list: ids shifted past the earlier pages' layout boxes
    (an id is a position in layout_det_res.boxes), reading positions counted over the
    whole document, figures renamed as in the Markdown."""
    blocks, boxes, position = [], 0, 0
    for page, mine in zip(pages, renames):
        for block in page.prunedResult.parsing_res_list:
            order = None
            if block.block_order is not None:
                position += 1
                order = position
            image = mine.get(block.block_image or "", block.block_image)
            blocks.append(block.model_copy(update={
                "block_id": block.block_id + boxes, "block_order": order, "block_image": image}))
        boxes += len(page.prunedResult.layout_det_res.boxes)
    return blocks


def combined_page(pages: Sequence[PageResult], renames: Sequence[dict[str, str]],
                  document: MergedDocument) -> PageResult:
    """The restructured pages as one page result (PaddleX's concatenatePages): the first
    page's index, size and settings; every block and layout box; the whole Markdown."""
    first = pages[0].prunedResult
    failed = [page.prunedResult.error for page in pages if page.prunedResult.error is not None]
    pruned = PrunedResult(
        page_index=first.page_index,
        width=first.width,
        height=first.height,
        model_settings=first.model_settings,
        parsing_res_list=_combined_blocks(pages, renames),
        layout_det_res=LayoutDetResult(boxes=[box for page in pages for box in page.prunedResult.layout_det_res.boxes]),
        error=failed[0] if len(failed) == len(pages) else None,
    )
    markdown = MarkdownResult(text=document.text, images=document.images,
                              isStart=pages[0].markdown.isStart, isEnd=pages[-1].markdown.isEnd)
    regions = RegionCounts(recognized=sum(p.regions.recognized for p in pages),
                           failed=sum(p.regions.failed for p in pages))
    return PageResult(prunedResult=pruned, markdown=markdown, regions=regions)
