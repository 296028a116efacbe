"""Title levels over the whole document, from numbering and size (docparse.merge, issue #17)."""

from __future__ import annotations

import pytest

from docparse.merge import MergeOptions, merged_markdown
from docparse.merge.titles import Numbering, Title, numbering, title_levels
from testkit.pages import IGNORED, document, margin, text, title


def headings(pages, **options) -> list[str]:
    markdown = merged_markdown(pages, MergeOptions(**options), IGNORED, prettify=True).text
    return [part for part in markdown.split("\n\n") if part.startswith("#")]


def test_numbered_english_titles_nest_by_their_numbering_across_pages():
    pages = document(
        [title("A Study of Pages", label="doc_title", height=60), title("1 Introduction"), text("Body."),
         title("1.1 Background"), text("Body.")],
        [title("1.1.1 Earlier work"), text("Body."), title("2. Method"), title("2.3. Setup"), text("Body.")],
    )
    assert headings(pages) == ["# A Study of Pages", "## 1 Introduction", "### 1.1 Background",
                               "#### 1.1.1 Earlier work", "## 2. Method", "### 2.3. Setup"]
    assert headings(pages, relevel_titles=False) == ["# A Study of Pages"] + ["## " + h.split(" ", 1)[1] for h in
                                                                             headings(pages)[1:]]


def test_numbered_chinese_titles_nest_chapter_section_item():
    pages = document(
        [title("年度报告", label="doc_title", height=60), title("第一章 总则"), title("第一节 目的"), text("正文。")],
        [title("一、适用范围"), title("（一）公司"), title("1. 总部"), text("正文。"), title("第二章 组织")],
    )
    assert headings(pages) == ["# 年度报告", "## 第一章 总则", "### 第一节 目的", "#### 一、适用范围",
                               "##### （一）公司", "###### 1. 总部", "## 第二章 组织"]


def test_unnumbered_titles_take_their_level_from_their_size():
    pages = document([title("Big", height=50), text("Body."), title("Medium", height=36), text("Body.")],
                     [title("Small", height=24), text("Body."), title("Big again", height=48),
                      title("Two lines\nof medium", height=70)])
    assert headings(pages) == ["## Big", "### Medium", "#### Small", "## Big again", "### Two lines of medium"]


def test_unnumbered_titles_beside_numbered_ones_take_the_level_of_the_closest_size():
    pages = document([title("Abstract", height=24), text("Body."), title("1 Introduction", height=40),
                      title("1.1 Scope", height=30), title("Notes on scope", height=29), title("Results", height=41)],
                     [title("References", height=24)])
    assert headings(pages) == ["## Abstract", "## 1 Introduction", "### 1.1 Scope", "### Notes on scope",
                               "## Results", "## References"]


def test_roman_numerals_then_letters_as_in_ieee_papers():
    levels = title_levels([Title("I. INTRODUCTION", 30), Title("A. Background", 26), Title("B. Scope", 26),
                           Title("II. METHOD", 30)])
    assert levels == [2, 3, 3, 2]


def test_letters_beside_decimal_chapters_number_appendices():
    levels = title_levels([Title("1 Introduction", 30), Title("1.1 Scope", 26), Title("A. Proofs", 30)])
    assert levels == [2, 3, 2]


@pytest.mark.parametrize("text, found", [
    ("2.3.1 Details", Numbering("decimal", 3)),
    ("1.2. Setup", Numbering("decimal", 2)),
    ("3、方法", Numbering("decimal", 1)),
    ("第十二章", Numbering("chapter", 1)),
    ("Chapter 4", Numbering("chapter", 1)),
    ("第一部分 概述", Numbering("part", 1)),
    ("（三）其他", Numbering("cn_paren", 1)),
    ("(2) Second", Numbering("paren", 1)),
    ("1) First", Numbering("paren", 1)),
    ("IV. RESULTS", Numbering("roman", 1)),
    ("2019年度报告", None),
    ("CLI usage", None),
    ("U.S. Policy", None),
    ("一种新方法", None),
    ("1.", None),
])
def test_numbering_styles(text, found):
    assert numbering(text) == found


def test_levels_stop_at_six():
    deep = title_levels([Title(f"{'.'.join(['1'] * depth)} Deep", 20) for depth in range(1, 9)])
    assert deep == [2, 3, 4, 5, 6, 6, 6, 6]


def test_a_chapter_title_repeated_in_the_margin_is_running_text_not_a_heading():
    def page(n: int):
        return [margin("2 Methods", label="paragraph_title"), title(f"2.{n} Part {n}"), text("Body.")]

    assert headings(document(page(1), page(2))) == ["## 2.1 Part 1", "## 2.2 Part 2"]
