import base64
import io
import json

import numpy as np
from PIL import Image

from docparse.assemble import (
    Block,
    PageContext,
    build_page_result,
    image_path_for,
    page_markdown,
    reading_order,
)
from docparse.errors import RecognitionError
from docparse.protocol import json_bytes
from docparse.responses import ModelSettings
from docparse.types import LayoutBox, RegionResult, Task


def box(label, x1, y1, x2, y2, order=None):
    return LayoutBox(label, 0.9, (x1, y1, x2, y2), order=order)


def test_two_columns_are_read_column_by_column():
    boxes = [
        box("text", 520, 100, 900, 300),  # right column, top
        box("doc_title", 100, 20, 900, 80),  # full-width title
        box("text", 100, 320, 480, 500),  # left column, bottom
        box("text", 100, 100, 480, 300),  # left column, top
        box("text", 520, 320, 900, 500),  # right column, bottom
    ]
    assert reading_order(boxes) == [1, 3, 2, 0, 4]


def test_detector_order_wins_when_every_box_has_one():
    boxes = [box("text", 0, 0, 10, 10, order=2), box("text", 0, 20, 10, 30, order=1)]
    assert reading_order(boxes) == [1, 0]


def block(block_id, label, task, content="", error=None):
    b = box(label, 10, 10 * block_id, 100, 10 * block_id + 8)
    failure = RecognitionError(error) if error else None
    return Block(block_id, b, task, RegionResult(content, failure),
                 image_path_for(b) if task is Task.IMAGE else None)


def test_markdown_headings_formulas_tables_figures_and_ignored_labels():
    blocks = [
        block(0, "header", Task.DROP),
        block(1, "doc_title", Task.TEXT, "Report"),
        block(2, "paragraph_title", Task.TEXT, "Method"),
        block(3, "text", Task.TEXT, "Body text."),
        block(4, "display_formula", Task.FORMULA, "E=mc^2"),
        block(5, "table", Task.TABLE, "<table><tr><td>1</td></tr></table>"),
        block(6, "image", Task.IMAGE),
        block(7, "footer", Task.TEXT, "page footer"),
    ]
    markdown = page_markdown(blocks, frozenset({"footer"}), prettify=True)
    assert markdown.split("\n\n") == [
        "# Report",
        "## Method",
        "Body text.",
        "$$\nE=mc^2\n$$",
        "<table><tr><td>1</td></tr></table>",
        "![image](imgs/img_in_image_box_10_60_100_68.jpg)",
    ]


def test_page_result_keeps_a_failed_region_with_its_error():
    page = np.full((200, 200, 3), 255, dtype=np.uint8)
    blocks = [block(0, "text", Task.TEXT, "ok"), block(1, "text", Task.TEXT, error="VLM returned 500"),
              block(2, "image", Task.IMAGE)]
    settings = ModelSettings(use_layout_detection=True, layout_model="m", recognizer="r")
    context = PageContext(0, 200, 200, settings, frozenset(), True, True, visualize=True)
    result = json.loads(json_bytes(build_page_result(page, blocks, context)))

    items = result["prunedResult"]["parsing_res_list"]
    assert [i["block_content"] for i in items] == ["ok", "", ""]
    assert items[1]["error"] == "VLM returned 500"
    assert [i["block_order"] for i in items] == [1, 2, 3]
    assert "ok" in result["markdown"]["text"]
    assert "region 1 (text) was not recognised: VLM returned 500" in result["markdown"]["text"]
    crop = Image.open(io.BytesIO(base64.b64decode(result["markdown"]["images"][blocks[2].image_path])))
    assert crop.size == (90, 8)
    assert Image.open(io.BytesIO(base64.b64decode(result["outputImages"]["layout_det_res"]))).size == (200, 200)
    assert Image.open(io.BytesIO(base64.b64decode(result["inputImage"]))).size == (200, 200)
    assert "error" not in items[0] and items[2]["block_image"] == blocks[2].image_path
