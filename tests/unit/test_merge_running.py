"""Running headers, footers and page numbers are kept out of the merged Markdown and stay
in each page's JSON (docparse.merge, issue #17)."""

from __future__ import annotations

import pytest

from docparse.merge import MergeOptions, merged_markdown, restructure_pages
from docparse.merge.running import is_page_number
from testkit.pages import IGNORED, Spec, document, margin, text
from docparse.types import Task


def merged(pages, ignored=IGNORED, **options) -> str:
    return merged_markdown(pages, MergeOptions(**options), ignored, prettify=True).text


@pytest.mark.parametrize("number", ["3", "- 3 -", "— 12 —", "Page 3", "page 3 of 10", "p. 7", "3 / 10", "iv",
                                    "第 3 页", "第3页 共10页", "共 10 页 第 3 页", "第三页"])
def test_bare_page_numbers_are_recognised(number):
    assert is_page_number(number)


@pytest.mark.parametrize("other", ["3 apples", "Chapter 3", "Table 3.1", "第三章", "2024 年度报告", ""])
def test_other_short_texts_are_not_page_numbers(other):
    assert not is_page_number(other)


def test_repeated_margin_text_and_page_numbers_are_left_out_in_english_and_chinese():
    def page(n: int):
        return [margin(f"Annual Report {2024} · Section {n}"), margin("公司年度报告"), text(f"Body of page {n}."),
                margin(f"Page {n} of 3", "bottom")]

    pages = document(*(page(n) for n in (1, 2, 3)))
    assert merged(pages) == "Body of page 1.\n\nBody of page 2.\n\nBody of page 3."
    first = restructure_pages(pages, MergeOptions(), IGNORED, prettify=True)[0]
    assert first.markdown.text == "Body of page 1."
    json = [(b.block_label, b.block_content, b.block_order) for b in first.prunedResult.parsing_res_list]
    assert json == [("text", "Annual Report 2024 · Section 1", None), ("text", "公司年度报告", None),
                    ("text", "Body of page 1.", 1), ("text", "Page 1 of 3", None)]


def test_header_footer_and_number_blocks_stay_out_even_when_their_labels_are_not_ignored():
    def page(n: int):
        return [Spec("header", "Journal of Tests", 30, at="top", task=Task.TEXT), text(f"Page {n} text."),
                Spec("footer", "Printed in 2024", 30, at="bottom", task=Task.TEXT),
                Spec("number", str(n), 30, at="bottom", task=Task.TEXT)]

    pages = document(page(1), page(2))
    assert merged(pages, ignored=frozenset()) == "Page 1 text.\n\nPage 2 text."
    kept = merged(pages, ignored=frozenset(), drop_running_text=False)
    assert kept.split("\n\n") == ["Journal of Tests", "Page 1 text.", "Printed in 2024", "1",
                                  "Journal of Tests", "Page 2 text.", "Printed in 2024", "2"]


def test_margin_text_on_one_page_only_or_repeated_body_text_stays():
    once = document([margin("Draft, not for circulation"), text("First.")], [text("Second.")])
    assert merged(once) == "Draft, not for circulation\n\nFirst.\n\nSecond."
    body = document([text("See the appendix.")], [text("See the appendix.")])
    assert merged(body) == "See the appendix.\n\nSee the appendix."


def test_running_text_does_not_cut_a_paragraph_and_is_kept_when_asked():
    pages = document([text("The paragraph runs"), margin("- 1 -", "bottom")],
                     [margin("Running head"), text("on to the next page."), margin("- 2 -", "bottom")],
                     [margin("Running head"), text("Last page.")])
    assert merged(pages) == "The paragraph runs on to the next page.\n\nLast page."
    kept = merged(pages, drop_running_text=False)
    assert kept.split("\n\n") == ["The paragraph runs on to the next page.", "- 1 -", "Running head", "- 2 -",
                                  "Running head", "Last page."]
