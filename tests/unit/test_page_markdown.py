"""A page-mode answer split into labelled blocks (docparse/recognition/page_markdown.py)."""

from __future__ import annotations

import json

import pytest

from docparse.errors import RecognitionError
from docparse.recognition.page_markdown import PageBlock, answer_text, split_blocks


def test_markdown_page_becomes_labelled_blocks():
    page = (
        "# Title\n\npara one\nline two\n\n## Section\n| a | b |\n|---|---|\n| 1 | 2 |\n\n$$x$$\n\n"
        "$$\ny = 1\n$$\n<table><tr><td>1</td></tr></table>\n# Second heading\nend"
    )
    assert split_blocks(page) == [
        PageBlock("doc_title", "Title"),
        PageBlock("text", "para one\nline two"),
        PageBlock("paragraph_title", "Section"),
        PageBlock("table", "| a | b |\n|---|---|\n| 1 | 2 |"),
        PageBlock("display_formula", "x"),
        PageBlock("display_formula", "y = 1"),
        PageBlock("table", "<table><tr><td>1</td></tr></table>"),
        PageBlock("paragraph_title", "Second heading"),
        PageBlock("text", "end"),
    ]


def test_plain_text_and_empty_pages():
    assert split_blocks("just words") == [PageBlock("text", "just words")]
    assert split_blocks("\n\n") == []


def test_json_output_reads_natural_text():
    answer = json.dumps({"primary_language": "en", "natural_text": "# T\n\nbody"})
    assert answer_text(answer, "json") == "# T\n\nbody"
    assert answer_text(json.dumps({"natural_text": None}), "json") == ""
    assert answer_text("# T", "markdown") == "# T"
    with pytest.raises(RecognitionError, match="not JSON"):
        answer_text("# T", "json")
    with pytest.raises(RecognitionError, match="no natural_text"):
        answer_text("{}", "json")
