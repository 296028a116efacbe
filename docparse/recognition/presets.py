"""Shipped VLM profiles (``preset`` in ``HPS_VLM_PROFILES``): each model's prompts and
reading mode as its authors publish them, so a deployment names a preset and its server.

Where each prompt comes from:

* ``glm-ocr``: zai-org/GLM-OCR, ``glmocr/config.yaml`` (the task prompts this project
  has always sent, ``docparse/recognition/tasks.py``).
* ``paddleocr-vl``: the PaddlePaddle/PaddleOCR-VL model card and PaddleOCR's
  PaddleOCR-VL pipeline: "OCR:", "Table Recognition:", "Formula Recognition:" (its
  "Chart Recognition:" is not sent: chart regions are kept as pictures here).
* ``lightonocr-2-1b``: the lightonai/LightOnOCR-2-1B model card's vLLM example sends the
  page image alone, with no text (hence the empty page prompt), temperature 0.2, and
  renders pages with the longest side at 1540 px; the answer is Markdown.
* ``ocrflux-3b``: chatdoc-com/OCRFlux, ``ocrflux/prompts.py``
  ``build_page_to_markdown_prompt`` (pages at 1024 px longest side,
  ``target_longest_image_dim``); the answer is a JSON object whose ``natural_text`` is
  the page (Markdown with HTML tables).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Mapping

OCRFLUX_PAGE_PROMPT = (
    "Below is the image of one page of a document. "
    "Just return the plain text representation of this document as if you were reading it naturally.\n"
    "ALL tables should be presented in HTML format.\n"
    'If there are images or figures in the page, present them as "<Image>(left,top),(right,bottom)</Image>", '
    "(left,top,right,bottom) are the coordinates of the top-left and bottom-right corners of the image or figure.\n"
    "Present all titles and headings as H1 headings.\n"
    "Do not hallucinate.\n"
)

PRESETS: Mapping[str, Mapping[str, Any]] = MappingProxyType({
    "glm-ocr": {
        "model": "glm-ocr",
        "mode": "region",
        "prompts": {"text": "Text Recognition:", "table": "Table Recognition:", "formula": "Formula Recognition:"},
        "output": "markdown",
    },
    "paddleocr-vl": {
        "model": "PaddleOCR-VL",
        "mode": "region",
        "prompts": {"text": "OCR:", "table": "Table Recognition:", "formula": "Formula Recognition:"},
        "output": "markdown",
    },
    "lightonocr-2-1b": {
        "model": "lightonai/LightOnOCR-2-1B",
        "mode": "page",
        "prompts": {"page": ""},
        "max_pixels": 1540 * 1540,
        "output": "markdown",
        "max_tokens": 4096,
        "temperature": 0.2,
    },
    "ocrflux-3b": {
        "model": "ChatDOC/OCRFlux-3B",
        "mode": "page",
        "prompts": {"page": OCRFLUX_PAGE_PROMPT},
        "max_pixels": 1024 * 1024,
        "output": "json",
        "max_tokens": 8192,
        "temperature": 0.0,
    },
})
