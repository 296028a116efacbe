"""The numbers of a comparison, pure functions over text.

Text is compared as read, not as typed: Markdown and HTML markup is stripped first
(``plain_text``), so that ``# Title`` and ``<h1>Title</h1>`` are the same words, and
whitespace runs count as one space. Edit distances are rapidfuzz's Levenshtein (C, so a
page of a few thousand characters costs microseconds, where pure Python costs seconds).
"""

from __future__ import annotations

import html
import math
import re
from collections import Counter
from typing import Sequence

from rapidfuzz.distance import Levenshtein

_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_TAG = re.compile(r"<[^>]+>")
_LINE_MARK = re.compile(r"^\s{0,3}(?:#{1,6}\s+|>\s?|[-*+]\s+|\d+[.)]\s+)", re.MULTILINE)
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(?:\|\s*:?-{3,}:?\s*)*\|?\s*$", re.MULTILINE)
_EMPHASIS = re.compile(r"[*_`~|]+|\$+")
_SPACE = re.compile(r"\s+")
# CJK ideographs, kana, hangul and their punctuation-free extensions: one word a character,
# since these scripts put no space between words.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_WORD = re.compile(rf"[{_CJK}]|[^\W_{_CJK}]+")


def plain_text(markdown: str) -> str:
    """The text a reader sees in ``markdown``: images dropped, links as their text, HTML
    tags, heading/list/quote marks, table rules and pipes, emphasis marks and LaTeX
    dollars out, entities decoded, whitespace runs as one space."""
    text = _IMAGE.sub(" ", markdown)
    text = _LINK.sub(r"\1", text)
    text = _TAG.sub(" ", text)
    text = _TABLE_RULE.sub(" ", text)
    text = _LINE_MARK.sub("", text)
    text = _EMPHASIS.sub(" ", text)
    return _SPACE.sub(" ", html.unescape(text)).strip()


def words(text: str) -> list[str]:
    """The words of ``text`` after ``plain_text``, casefolded: runs of letters and digits
    (punctuation splits and is dropped), and each CJK character on its own."""
    return _WORD.findall(plain_text(text).casefold())


def word_f1(hypothesis: str, reference: str) -> float:
    """F1 of the bag of words (a word counts as often as it occurs in both): order-blind,
    so that a model reading two columns in another order is not punished twice. Two texts
    without words agree (1.0)."""
    got, want = Counter(words(hypothesis)), Counter(words(reference))
    if not got and not want:
        return 1.0
    overlap = sum((got & want).values())
    if not overlap:
        return 0.0
    precision, recall = overlap / sum(got.values()), overlap / sum(want.values())
    return 2 * precision * recall / (precision + recall)


def cer(hypothesis: str, reference: str) -> float:
    """Character error rate: Levenshtein distance / reference length, on ``plain_text``.
    Can exceed 1 (a long wrong answer). An empty reference: 0 if the answer is empty too,
    else 1."""
    got, want = plain_text(hypothesis), plain_text(reference)
    if not want:
        return 0.0 if not got else 1.0
    return Levenshtein.distance(got, want) / len(want)


def similarity(first: str, second: str) -> float:
    """How alike two outputs read: 1 - Levenshtein distance / the longer length, on
    ``plain_text`` (1.0 same text, 0.0 nothing in common; two empty texts are 1.0)."""
    return Levenshtein.normalized_similarity(plain_text(first), plain_text(second))


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100), interpolated between the closest ranks like
    numpy's default ("linear"); None of no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None
