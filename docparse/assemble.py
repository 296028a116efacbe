"""Turn a page's regions and their recognised content into the PaddleX-compatible result:
reading order, Markdown, ``prunedResult`` JSON, figure crops and the optional picture of
the layout boxes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from docparse.recognition.crops import crop_region, jpeg_base64
from docparse.responses import (
    LayoutDetResult,
    MarkdownResult,
    ModelSettings,
    PageResult,
    ParsingBlock,
    PrunedResult,
    RegionCounts,
)
from docparse.types import READ_TASKS, LayoutBox, RegionResult, Task

_HEADING_PREFIX = {"doc_title": "# ", "paragraph_title": "## "}


@dataclass(frozen=True)
class Block:
    """One region with everything the result needs about it."""

    block_id: int  # position in the layout detector's output
    box: LayoutBox
    task: Task
    result: RegionResult
    image_path: str | None = None  # markdown.images key, for figures


# --- reading order ---------------------------------------------------------------------


def reading_order(boxes: Sequence[LayoutBox]) -> list[int]:
    """Indices of ``boxes`` in reading order.

    The detector's own order wins when every box has one (PP-DocLayoutV2/V3 predict it).
    Otherwise a recursive XY-cut that prefers columns: where an empty vertical strip
    separates the boxes, read column by column; otherwise take the top band (boxes up to
    the first empty horizontal strip) and go on with the rest. Peeling one band at a time
    keeps a full-width title from turning two aligned columns into rows.
    """
    if boxes and all(b.order is not None for b in boxes):
        return sorted(range(len(boxes)), key=lambda i: (boxes[i].order, i))
    return _xy_cut(list(range(len(boxes))), boxes)


def _runs(indices: list[int], boxes: Sequence[LayoutBox], axis: int) -> list[list[int]]:
    """Group boxes into runs along ``axis`` (0 = x, 1 = y) split by uncovered space."""
    runs: list[list[int]] = []
    run_end = None
    for index in sorted(indices, key=lambda i: (boxes[i].coordinate[axis], boxes[i].coordinate[axis + 2])):
        start, end = boxes[index].coordinate[axis], boxes[index].coordinate[axis + 2]
        if run_end is None or start >= run_end:
            runs.append([index])
            run_end = end
        else:
            runs[-1].append(index)
            run_end = max(run_end, end)
    return runs


def _xy_cut(indices: list[int], boxes: Sequence[LayoutBox]) -> list[int]:
    if len(indices) <= 1:
        return indices
    columns = _runs(indices, boxes, axis=0)
    if len(columns) > 1:
        return [i for column in columns for i in _xy_cut(column, boxes)]
    bands = _runs(indices, boxes, axis=1)
    if len(bands) > 1:
        top, rest = bands[0], [i for band in bands[1:] for i in band]
        return _xy_cut(top, boxes) + _xy_cut(rest, boxes)
    # Overlapping both ways: top to bottom, then left to right.
    return sorted(indices, key=lambda i: (boxes[i].coordinate[1], boxes[i].coordinate[0]))


# --- Markdown ------------------------------------------------------------------------


def image_path_for(box: LayoutBox) -> str:
    """PaddleX's naming of a figure crop inside ``markdown.images``."""
    x1, y1, x2, y2 = (int(round(v)) for v in box.coordinate)
    return f"imgs/img_in_{box.label}_box_{x1}_{y1}_{x2}_{y2}.jpg"


def block_markdown(block: Block) -> str:
    """The Markdown of one block; an empty string leaves it out."""
    if block.result.error:
        return f"<!-- region {block.block_id} ({block.box.label}) was not recognised: " \
               f"{_comment_safe(block.result.error)} -->"
    if block.task is Task.IMAGE:
        return f"![{block.box.label}]({block.image_path})" if block.image_path else ""
    content = block.result.content.strip()
    if not content:
        return ""
    if block.task is Task.FORMULA:
        return f"$$\n{content}\n$$"
    return _HEADING_PREFIX.get(block.box.label, "") + content


def _comment_safe(text: str) -> str:
    return text.replace("--", "- -").replace("\n", " ")


def page_markdown(blocks: Sequence[Block], ignored_labels: frozenset[str], prettify: bool) -> str:
    parts = [
        md
        for block in blocks
        if block.box.label not in ignored_labels and block.task is not Task.DROP
        for md in [block_markdown(block)]
        if md
    ]
    return ("\n\n" if prettify else "\n").join(parts)


# --- images --------------------------------------------------------------------------


def draw_layout(page: np.ndarray, boxes: Sequence[LayoutBox], order: Sequence[int]) -> Image.Image:
    """The page with each box outlined and labelled with its reading position."""
    picture = Image.fromarray(page).convert("RGB")
    draw = ImageDraw.Draw(picture)
    palette = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180)]
    for position, index in enumerate(order):
        box = boxes[index]
        colour = palette[hash(box.label) % len(palette)]
        draw.rectangle(box.coordinate, outline=colour, width=3)
        draw.text((box.coordinate[0] + 4, box.coordinate[1] + 2), f"{position} {box.label}", fill=colour)
    return picture


# --- the page result -------------------------------------------------------------------


@dataclass(frozen=True)
class PageContext:
    """What the result needs to know about the page and the request."""

    page_index: int
    width: int
    height: int
    model_settings: ModelSettings
    ignored_labels: frozenset[str]
    prettify: bool
    return_images: bool
    visualize: bool


def parsing_block(block: Block, order: int | None) -> ParsingBlock:
    return ParsingBlock(
        block_label=block.box.label,
        block_content=block.result.content,
        block_bbox=[int(round(v)) for v in block.box.coordinate],
        block_id=block.block_id,
        block_order=order,
        block_image=block.image_path,
        error=block.result.error,
        source=block.result.source,
    )


def needs_pixels(blocks: Sequence[Block], ctx: PageContext) -> bool:
    """Whether ``build_page_result`` draws or cuts the page (else any array will do)."""
    return ctx.visualize or (ctx.return_images and any(block.image_path for block in blocks))


def build_page_result(page: np.ndarray, blocks: Sequence[Block], ctx: PageContext) -> PageResult:
    """One ``layoutParsingResults[]`` item; ``blocks`` are in reading order."""
    parsing = []
    position = 0
    for block in blocks:
        order = None
        if block.task is not Task.DROP and block.box.label not in ctx.ignored_labels:
            position += 1
            order = position
        parsing.append(parsing_block(block, order))

    images = {}
    if ctx.return_images:
        images = {
            block.image_path: jpeg_base64(crop_region(page, block.box))
            for block in blocks
            if block.image_path
        }
    output_images = input_image = None
    if ctx.visualize:
        ordered_boxes = [b.box for b in blocks]
        picture = draw_layout(page, ordered_boxes, range(len(ordered_boxes)))
        output_images = {"layout_det_res": jpeg_base64(picture)}
        input_image = jpeg_base64(page)
    by_id = sorted(blocks, key=lambda b: b.block_id)
    return PageResult(
        prunedResult=PrunedResult(
            page_index=ctx.page_index,
            width=ctx.width,
            height=ctx.height,
            model_settings=ctx.model_settings,
            parsing_res_list=parsing,
            layout_det_res=LayoutDetResult(boxes=[b.box.to_det_box() for b in by_id]),
        ),
        markdown=MarkdownResult(
            text=page_markdown(blocks, ctx.ignored_labels, ctx.prettify),
            images=images,
            isStart=True,
            isEnd=True,
        ),
        outputImages=output_images,
        inputImage=input_image,
        regions=region_counts(blocks),
    )


def region_counts(blocks: Sequence[Block]) -> RegionCounts:
    read = [block for block in blocks if block.task in READ_TASKS]
    failed = sum(1 for block in read if block.result.failure is not None)
    return RegionCounts(recognized=len(read) - failed, failed=failed)


def failed_page_result(index: int, width: int, height: int, model_settings: ModelSettings, message: str) -> PageResult:
    """A page that could not be parsed: kept in its place, with its error (and a comment
    marking it in the Markdown, as a region that failed gets one)."""
    return PageResult(
        prunedResult=PrunedResult(
            page_index=index,
            width=width,
            height=height,
            model_settings=model_settings,
            parsing_res_list=[],
            layout_det_res=LayoutDetResult(boxes=[]),
            error=message,
        ),
        markdown=MarkdownResult(
            text=f"<!-- page {index + 1} could not be parsed: {_comment_safe(message)} -->",
            images={}, isStart=True, isEnd=True,
        ),
        regions=RegionCounts(recognized=0, failed=0),
    )
