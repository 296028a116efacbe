"""Where a paragraph stops and how two halves of one are joined, in Latin and CJK scripts.

A page break cuts a paragraph without saying so: the first half does not end a sentence
and the second half starts in the middle of one. These are the tests for both ends and
the one rule for the seam, so that a word split by the break comes back whole.
"""

from __future__ import annotations

import re

# What ends a sentence (or a clause a new paragraph may follow: a colon before a list).
_TERMINAL = frozenset(".!?:;…。！？：；．｡")
# Closing quotes and brackets that may follow the final stop: 'it ended."' still ends.
_CLOSERS = "\"'”’»)]}」』）】〉》 \t\r\n"
# A word cut at the break: a letter, then a hyphen (ASCII, soft or Unicode hyphen).
_CUT_WORD = re.compile(r"[^\W\d_][-\u00ad\u2010]$")
# Where a CJK list or heading starts: a new item, never the rest of a sentence.
_CJK_ITEM = re.compile(
    r"^(第\s*[一二三四五六七八九十百零〇两\d]+\s*[章节篇部条]|[一二三四五六七八九十]+\s*[、．.]|"
    r"[（(]\s*[一二三四五六七八九十\d]+\s*[）)]|\d+\s*[、．.）)])"
)


def is_cjk(char: str) -> bool:
    """Chinese and Japanese characters and their punctuation, which are written without
    spaces between words (Korean Hangul is not: it separates words with spaces)."""
    if not char:
        return False
    code = ord(char[0])
    return (
        0x3000 <= code <= 0x30FF  # CJK punctuation, hiragana, katakana
        or 0x3400 <= code <= 0x4DBF  # extension A
        or 0x4E00 <= code <= 0x9FFF  # unified ideographs
        or 0xF900 <= code <= 0xFAFF  # compatibility ideographs
        or 0xFF00 <= code <= 0xFFEF  # full-width forms (，。：)
    )


def ends_sentence(text: str) -> bool:
    """The text ends a sentence: its last visible character (past closing quotes and
    brackets) is a full stop, question or exclamation mark, ellipsis, colon or semicolon.
    Empty text ends nothing that could go on, so it counts as ended."""
    stripped = text.rstrip(_CLOSERS)
    return not stripped or stripped[-1] in _TERMINAL


def starts_mid_sentence(text: str) -> bool:
    """The text starts in the middle of a sentence: with a lower-case letter (scripts
    with case), or with a CJK character that does not open a numbered item (CJK has no
    case, so the previous half's missing full stop carries the decision there)."""
    stripped = text.lstrip()
    first = stripped[:1]
    if not first:
        return False
    if first.islower():
        return True
    return is_cjk(first) and not _CJK_ITEM.match(stripped)


def join_halves(left: str, right: str) -> str:
    """One paragraph from its two halves: a word cut with a hyphen is rejoined
    ("continu-" + "ation" is "continuation"; a compound keeps its hyphen: "state-of-the-"
    + "art"), CJK joins without a space, anything else with one space."""
    left, right = left.rstrip(), right.lstrip()
    if _CUT_WORD.search(left) and right[:1].islower():
        compound = "-" in left.split()[-1][:-1]
        return left + right if compound else left[:-1] + right
    if is_cjk(left[-1:]) or is_cjk(right[:1]):
        return left + right
    return f"{left} {right}"


def continues(left: str, right: str, left_ends: bool = True, right_starts: bool = True) -> bool:
    """``right`` (the top of a page) goes on with ``left`` (the bottom of the page before):
    ``left`` does not end a sentence and ``right`` starts in one. The pages' own flags
    (markdown isEnd of the first page, isStart of the second) say so when they are false."""
    open_end = not left_ends or not ends_sentence(left)
    open_start = not right_starts or starts_mid_sentence(right)
    return open_end and open_start and bool(left.strip()) and bool(right.strip())
