"""Properties of the cross-page merge on generated documents (hypothesis): merging neither
loses nor duplicates a word, and every block keeps its page.

Words: runs of letters and digits, each CJK character one word; comments (failed pages
and regions), image links and HTML tags are not words, and a hyphen at a break joins
what it cuts ("continu-" + "ation" is one word, before and after merging). What merging
may remove: running text (the generated running header, when it repeats, and page
numbers) and a table's header row repeated on the page that continues it.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from docparse.merge import MergeOptions, concatenate_pages, merged_markdown, restructure_pages
from docparse.merge.running import margin_zone
from testkit.pages import (IGNORED, Spec, document, failed, figure, html_table, margin, pipe_table, table, text,
                           title)

LATIN = ["alpha", "beta", "gamma", "delta", "river", "stone", "light", "paper", "cloud", "field"]
CJK = "数据表格文本页面模型结果分析方法"
HEADER_CELLS = ["Name", "Qty", "Unit", "Note"]
RUNNING_HEAD = "Quarterly Review 2024"
_CJK_RANGE = "\u3400-\u4dbf\u4e00-\u9fff"
_WORD = re.compile(rf"[{_CJK_RANGE}]|(?:(?![{_CJK_RANGE}])[^\W_])+")


def words(markdown: str) -> Counter:
    text_only = re.sub(r"<!--.*?-->", " ", markdown, flags=re.S)
    text_only = re.sub(r"!\[[^\]]*\]\([^)]*\)", " ", text_only)
    text_only = re.sub(r"<[^>]+>", " ", text_only)
    return Counter(_WORD.findall(re.sub(r"-\s+", "", text_only)))


@dataclass
class Chain:
    """A table being continued over pages: its shape and header."""

    kind: str
    header: list[str]
    serial: itertools.count = field(default_factory=lambda: itertools.count(1))

    def content(self, draw, with_header: bool) -> str:
        rows = [[f"v{next(self.serial)}x{c}" for c in range(len(self.header))]
                for _ in range(draw(st.integers(1, 3)))]
        if self.kind == "html":
            return html_table(rows, self.header if with_header else None)
        return pipe_table(rows, self.header) if with_header else pipe_table(rows[1:], rows[0])


@dataclass
class Cut:
    """A paragraph the page break cuts: its script, and the rest of a hyphenated word."""

    script: str
    rest: str = ""


def sentence(draw, script: str, capital: bool) -> str:
    if script == "cjk":
        return "".join(draw(st.lists(st.sampled_from(CJK), min_size=1, max_size=8)))
    chosen = draw(st.lists(st.sampled_from(LATIN), min_size=1, max_size=6))
    return " ".join([chosen[0].capitalize() if capital else chosen[0], *chosen[1:]])


def element(draw) -> Spec:
    """A block of the page's middle: a paragraph, title, figure, formula or failed region."""
    kind = draw(st.sampled_from(["latin", "cjk", "title", "figure", "formula", "error"]))
    if kind in ("latin", "cjk"):
        return text(sentence(draw, kind, True) + ("." if kind == "latin" else "。"))
    if kind == "title":
        return title(draw(st.sampled_from(["1 Alpha", "2.1 Beta", "第一章 数据", "Results", "（一）方法"])),
                     height=draw(st.sampled_from([24, 32, 40])))
    if kind == "figure":
        return figure(height=150)  # the page's blocks stay clear of the bottom margin
    if kind == "formula":
        return Spec("display_formula", "x^{2} + y_{1}", 50)
    return Spec("text", "", error="VLM returned 500")


def cut_end(draw, opening: str, cut: Cut) -> str:
    """A paragraph's text that the break cuts: no full stop, perhaps a hyphenated word."""
    cut.rest = ""
    if cut.script == "latin" and draw(st.booleans()):
        word = draw(st.sampled_from(LATIN))
        at = draw(st.integers(1, len(word) - 1))
        cut.rest = word[at:]
        return f"{opening} {word[:at]}-"
    return opening + ("，" if cut.script == "cjk" and draw(st.booleans()) else "")


@st.composite
def documents(draw):
    """(pages, the words merging may drop): a document with designed continuations."""
    count = draw(st.integers(1, 5))
    broken = [draw(st.integers(0, 9)) == 0 for _ in range(count)]
    links = ["none" if broken[i] or broken[i + 1] else draw(st.sampled_from(["none", "para", "table"]))
             for i in range(count - 1)] + ["none"]
    running, numbered = draw(st.booleans()), draw(st.booleans())
    chain, cut, dropped, pages = None, None, Counter(), []
    for i in range(count):
        if broken[i]:
            pages.append(failed(i))
            continue
        specs, middle = [], [element(draw) for _ in range(draw(st.integers(0, 3)))]
        if running:
            specs.append(margin(RUNNING_HEAD))
        before = links[i - 1] if i else "none"
        alone = not middle  # one block may continue from the page before and over the next
        if before == "table":
            repeated = draw(st.booleans())
            dropped += words(" ".join(chain.header)) if repeated else Counter()
            specs.append(table(chain.content(draw, repeated), height=120))
        elif before == "para":
            opening = cut.rest + (" " if cut.rest else "") + sentence(draw, cut.script, False)
            if alone and links[i] == "para":
                specs.append(text(cut_end(draw, opening, cut)))
            else:
                specs.append(text(opening + ("." if cut.script == "latin" else "。")))
        else:
            specs.append(text(sentence(draw, "latin", True) + "."))
        specs += middle
        if links[i] == "table" and not (alone and before == "table"):
            chain = Chain(draw(st.sampled_from(["html", "pipe"])), HEADER_CELLS[:draw(st.integers(2, 4))])
            specs.append(table(chain.content(draw, True), height=120))
        elif links[i] == "para" and not (alone and before == "para"):
            cut = Cut(draw(st.sampled_from(["latin", "cjk"])))
            specs.append(text(cut_end(draw, sentence(draw, cut.script, True), cut)))
        if numbered:
            specs.append(margin(f"- {i + 1} -", "bottom"))
        pages.append(specs)
    return document(*pages), dropped


def kept_words(pages) -> Counter:
    """The words of the pages' Markdown, less the running text merging takes out."""
    parsed = [p for p in pages if p.prunedResult.error is None]
    head_runs = sum(any(b.block_content == RUNNING_HEAD for b in p.prunedResult.parsing_res_list) for p in parsed) >= 2
    kept = [
        b.block_content for p in parsed for b in p.prunedResult.parsing_res_list
        if b.block_order is not None and not b.error
        and not (margin_zone(b.block_bbox, p.prunedResult.height) and (head_runs or b.block_content != RUNNING_HEAD))
    ]
    return words("\n\n".join(kept))


PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(documents())
def test_merging_neither_loses_nor_duplicates_a_word(generated):
    pages, dropped = generated
    merged = merged_markdown(pages, MergeOptions(), IGNORED, prettify=True)
    assert words(merged.text) == kept_words(pages) - dropped
    restructured = restructure_pages(pages, MergeOptions(), IGNORED, prettify=True)
    assert words("\n\n".join(p.markdown.text for p in restructured)) == words(merged.text)
    assert concatenate_pages(pages, MergeOptions(), IGNORED, prettify=True).markdown.text == merged.text


@PROPERTY
@given(documents())
def test_every_block_keeps_its_page_and_with_every_rule_off_nothing_changes(generated):
    pages, _ = generated
    restructured = restructure_pages(pages, MergeOptions(), IGNORED, prettify=True)
    for before, after in zip(pages, restructured, strict=True):
        shape = [(b.block_label, b.block_bbox, b.block_id) for b in before.prunedResult.parsing_res_list]
        assert [(b.block_label, b.block_bbox, b.block_id) for b in after.prunedResult.parsing_res_list] == shape
        orders = [b.block_order for b in after.prunedResult.parsing_res_list if b.block_order is not None]
        assert orders == list(range(1, len(orders) + 1))
    off = MergeOptions(merge_tables=False, merge_paragraphs=False, relevel_titles=False, drop_running_text=False)
    for before, after in zip(pages, restructure_pages(pages, off, IGNORED, prettify=True)):
        assert after.markdown.text == before.markdown.text
