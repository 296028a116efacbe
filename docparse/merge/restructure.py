"""Restructuring a parsed document across its pages (PaddleX's ``restructure_pages``).

Pure functions over page results: no models, no I/O. The steps, in order:

1. running text: header/footer/number blocks, and margin text that repeats or is a bare
   page number, are marked (``running.py``);
2. the flow across page breaks: a continued table or paragraph is moved into the block
   where it starts (``flow.py``);
3. titles are relevelled over the whole document (``titles.py``);
4. each page's JSON and Markdown are rebuilt (``render.py``), or the whole document's
   (``document.py``).

What a page's JSON says afterwards: every block is still there, in its place, with its
label, box and id. A block whose text moved to an earlier page (the continued part of a
table or paragraph) keeps its block with ``block_content`` "" and ``block_order`` null,
as PaddleX empties the later half of a merged table; the earlier page's block holds the
whole table or paragraph. Running text keeps its block and content, with
``block_order`` null when it is left out of the Markdown. ``block_order`` counts the
blocks still in the Markdown, 1, 2, 3…. A failed page (``prunedResult.error``) comes back
as it was, and nothing is merged across it.
"""

from __future__ import annotations

from typing import Sequence

from docparse.merge.document import combined_page, figure_renames, merged_document
from docparse.merge.flow import merge_across
from docparse.merge.model import MergedDocument, MergeOptions, PageState
from docparse.merge.render import page_markdown, shown
from docparse.merge.running import running_blocks
from docparse.merge.titles import Title, title_levels, title_size
from docparse.responses import MarkdownResult, PageResult

TITLE_LABELS = frozenset({"doc_title", "paragraph_title"})


def _mark_running(states: Sequence[PageState]) -> None:
    pages = [(s.page.prunedResult.height, [] if s.failed else [slot.block for slot in s.slots]) for s in states]
    for page, block in running_blocks(pages):
        states[page].slots[block].running = True


def _relevel(states: Sequence[PageState]) -> None:
    """Give every title of the document (running ones aside) its level."""
    slots = [
        slot for state in states if not state.failed for slot in state.slots
        if slot.label in TITLE_LABELS and not slot.running and not slot.block.error and slot.content.strip()
    ]
    titles = [
        Title(slot.content, title_size(_height(slot.block.block_bbox), slot.content), slot.label == "doc_title")
        for slot in slots
    ]
    for slot, level in zip(slots, title_levels(titles)):
        slot.level = level


def _height(bbox: Sequence[int]) -> float:
    return float(bbox[3] - bbox[1]) if len(bbox) == 4 else 0.0


def _restructured(pages: Sequence[PageResult], options: MergeOptions,
                  ignored_labels: frozenset[str]) -> list[PageState]:
    states = [PageState.of(page) for page in pages]
    _mark_running(states)
    merge_across(states, options, ignored_labels)
    if options.relevel_titles:
        _relevel(states)
    return states


def _page_result(state: PageState, options: MergeOptions, ignored_labels: frozenset[str], prettify: bool) -> PageResult:
    """The page's result after restructuring (a failed page as it came)."""
    if state.failed:
        return state.page
    blocks, position = [], 0
    for slot in state.slots:
        order = None
        if slot.block.block_order is not None and shown(slot, ignored_labels, options.drop_running_text):
            position += 1
            order = position
        content = "" if slot.moved else slot.content
        blocks.append(slot.block.model_copy(update={"block_content": content, "block_order": order}))
    text = page_markdown(state, ignored_labels, options.drop_running_text, prettify)
    markdown = MarkdownResult(text=text, images=state.page.markdown.images,
                              isStart=not state.starts_inside, isEnd=not state.ends_inside)
    pruned = state.page.prunedResult.model_copy(update={"parsing_res_list": blocks})
    return state.page.model_copy(update={"prunedResult": pruned, "markdown": markdown})


def restructure_pages(pages: Sequence[PageResult], options: MergeOptions, ignored_labels: frozenset[str],
                      prettify: bool) -> list[PageResult]:
    """PaddleX's per-page restructuring: the same pages, a continued table or paragraph
    moved into the page where it starts, titles re-levelled; each page's markdown rebuilt
    (assemble's rules). The later page keeps the moved block, emptied, with block_order
    null (module docstring). isStart/isEnd are false only where a paragraph goes on
    across the break and was left unjoined (``merge_paragraphs`` off): where a client
    joining the pages itself must join them."""
    states = _restructured(pages, options, ignored_labels)
    return [_page_result(state, options, ignored_labels, prettify) for state in states]


def merged_markdown(pages: Sequence[PageResult], options: MergeOptions, ignored_labels: frozenset[str],
                    prettify: bool) -> MergedDocument:
    """The whole document's Markdown: the rules above applied, running text left out
    (unless ``options.drop_running_text`` is off), a failed page as a comment in its
    place; ``.images`` holds every page's figures (a key two pages share renamed)."""
    states = _restructured(pages, options, ignored_labels)
    return merged_document(states, ignored_labels, options.drop_running_text, prettify)


def concatenate_pages(pages: Sequence[PageResult], options: MergeOptions, ignored_labels: frozenset[str],
                      prettify: bool) -> PageResult:
    """All pages as one page result (concatenatePages): the first page's index, size and
    settings, every page's blocks (restructured; ids shifted past the earlier pages'
    layout boxes, reading order over the whole document) and boxes, and the whole
    document's Markdown and figures."""
    if not pages:
        raise ValueError("concatenate_pages needs at least one page")
    states = _restructured(pages, options, ignored_labels)
    results = [_page_result(state, options, ignored_labels, prettify) for state in states]
    document = merged_document(states, ignored_labels, options.drop_running_text, prettify)
    return combined_page(results, figure_renames(states), document)
