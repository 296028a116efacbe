"""A paragraph cut by a page break is joined (docparse.merge, issue #17)."""

from __future__ import annotations

import pytest

from docparse.merge import MergeOptions, merged_markdown, restructure_pages
from docparse.merge.text import continues, ends_sentence, join_halves, starts_mid_sentence
from testkit.pages import IGNORED, document, failed, margin, text, title


def merged(pages, **options) -> str:
    return merged_markdown(pages, MergeOptions(**options), IGNORED, prettify=True).text


@pytest.mark.parametrize("left, right, joined", [
    ("The model reads the continu-", "ation of the page.", "The model reads the continuation of the page."),
    ("The break falls between two", "words of the sentence.", "The break falls between two words of the sentence."),
    ("这一段文字在页面底部被截断，下一页", "继续了这句话。", "这一段文字在页面底部被截断，下一页继续了这句话。"),
    ("We call it GLM-OCR and", "it reads 中文 too.", "We call it GLM-OCR and it reads 中文 too."),
    ("模型的名字是", "glm-ocr。", "模型的名字是glm-ocr。"),
])
def test_the_halves_of_a_paragraph_are_joined_as_the_script_writes_them(left, right, joined):
    pages = document([text("First paragraph."), text(left), margin("- 1 -", "bottom")],
                     [margin("Running title"), text(right), text("Next paragraph.")])
    assert merged(pages) == f"First paragraph.\n\n{joined}\n\nRunning title\n\nNext paragraph."


@pytest.mark.parametrize("left, right", [
    ("This sentence ends.", "and this one starts low."),  # the first half ends a sentence
    ("This one does not end", "Because this starts a sentence."),  # upper case: a new paragraph
    ("The list follows:", "first item"),  # a colon ends the lead-in
    ("这一段以句号结束。", "下一段从新的一行开始。"),
    ("下面是两项要求", "一、所有文件按期提交。"),  # a numbered item starts anew
    ("A quotation that ends “like this.”", "and more."),
])
def test_a_finished_paragraph_or_a_new_one_stays_apart(left, right):
    pages = document([text(left)], [text(right)])
    assert merged(pages) == f"{left}\n\n{right}"


def test_a_paragraph_over_three_pages_is_joined_into_the_first():
    pages = document([text("It begins on page one and")], [text("runs over the whole of page two and")],
                     [text("ends on page three."), text("Another paragraph.")])
    first, second, third = restructure_pages(pages, MergeOptions(), IGNORED, prettify=True)
    assert first.markdown.text == "It begins on page one and runs over the whole of page two and ends on page three."
    assert second.markdown.text == ""
    assert third.markdown.text == "Another paragraph."
    [moved] = second.prunedResult.parsing_res_list
    assert (moved.block_label, moved.block_content, moved.block_order) == ("text", "", None)
    assert merged(pages) == f"{first.markdown.text}\n\nAnother paragraph."


def test_the_pages_flags_start_and_end_a_paragraph_unless_merging_is_off():
    pages = document([text("Cut in the mid-")], [text("dle of a word.")])
    joined = restructure_pages(pages, MergeOptions(), IGNORED, prettify=True)
    assert [(p.markdown.isStart, p.markdown.isEnd) for p in joined] == [(True, True), (True, True)]
    apart = restructure_pages(pages, MergeOptions(merge_paragraphs=False), IGNORED, prettify=True)
    assert [(p.markdown.isStart, p.markdown.isEnd) for p in apart] == [(True, False), (False, True)]
    assert [p.markdown.text for p in apart] == ["Cut in the mid-", "dle of a word."]


def test_the_pages_own_flags_say_a_paragraph_goes_on():
    pages = document([text("Ends with a full stop.")], [text("Starts with a capital.")])
    told = [p.model_copy(update={"markdown": p.markdown.model_copy(update=flags)})
            for p, flags in zip(pages, [{"isEnd": False}, {"isStart": False}])]
    assert merged(told) == "Ends with a full stop. Starts with a capital."
    assert merged(pages) == "Ends with a full stop.\n\nStarts with a capital."


def test_a_footnote_between_the_halves_does_not_part_them_but_a_title_or_a_failed_page_does():
    footnote = text("1 A footnote.", label="footnote", height=30)
    pages = document([text("The text goes"), footnote], [text("on after the footnote.")])
    assert merged(pages) == "The text goes on after the footnote."
    assert merged(document([text("The text goes")], [title("2 Method"), text("on after it.")])) == \
        "The text goes\n\n## 2 Method\n\non after it."
    across = merged(document([text("The text goes")], failed(1), [text("on after it.")]))
    assert across.startswith("The text goes\n\n<!-- page 2") and across.endswith("-->\n\non after it.")


def test_sentence_ends_and_starts():
    assert ends_sentence("Done.") and ends_sentence("完成。") and ends_sentence("(see above.)")
    assert ends_sentence("Why?”") and ends_sentence("结束；") and ends_sentence("")
    assert not ends_sentence("not done") and not ends_sentence("未完，") and not ends_sentence("hyphen-")
    assert starts_mid_sentence("  lower case") and starts_mid_sentence("中文开头")
    assert not starts_mid_sentence("Upper") and not starts_mid_sentence("3 items")
    assert not starts_mid_sentence("（一）标题") and not starts_mid_sentence("第二章 方法")
    assert join_halves("well-", "Known") == "well- Known"  # a hyphen before a capital stays
    assert join_halves("the state-of-the-", "art model") == "the state-of-the-art model"  # a compound
    assert join_halves("well-", "known") == "wellknown"  # a cut and a hyphenated word look alike
    assert not continues("", "lower") and not continues("open", "")
