"""Title levels over the whole document, from numbering first and size second.

The recogniser sees one title at a time, so every section title comes out as ``##``. The
document tells more: "2.3.1" is deeper than "2.3", "第一节" sits under "第一章", and an
unnumbered title set as large as the chapter titles is a chapter title. Levels here are
Markdown heading levels: the document title is 1 (``#``), section titles start at 2 (as
PaddleX renders a paragraph title of level 1 as ``##``) and stop at 6.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

TOP_LEVEL = 2  # the first level below the document title
MAX_LEVEL = 6  # Markdown has no deeper heading
SIZE_TOLERANCE = 0.15  # sizes within 15% of each other are one size

_CN = r"[一二三四五六七八九十百零〇两]+"
_ROMAN = r"(?=[IVX])X{0,3}(?:IX|IV|V?I{0,3})"  # I to XXXIX, the numerals headings use
# Numbering styles from the outermost to the innermost, as documents nest them; each with
# whether the numbering may stand alone ("第一章" may, "1." may not).
_STYLES: tuple[tuple[str, re.Pattern[str], bool], ...] = (
    ("part", re.compile(rf"^(第\s*({_CN}|\d+)\s*(篇|部分|部)|part\s+(\d+|{_ROMAN})\b)", re.I), True),
    ("chapter", re.compile(rf"^(第\s*({_CN}|\d+)\s*章|chapter\s+(\d+|{_ROMAN})\b)", re.I), True),
    ("section", re.compile(rf"^第\s*({_CN}|\d+)\s*节"), True),
    ("roman", re.compile(rf"^{_ROMAN}[.．]\s*(?=[^\W\d_])"), False),
    ("letter", re.compile(r"^[A-Z][.．]\s+(?=[^\W\d_])"), False),
    ("cn_item", re.compile(rf"^{_CN}\s*[、．.]"), False),
    ("cn_paren", re.compile(rf"^[（(]\s*{_CN}\s*[）)]"), False),
    ("decimal", re.compile(r"^(\d{1,3}(?:\s*[.．]\s*\d{1,3})*)(?:\s*[.．、])?(?=\s|[^\d.．)）]|$)"), False),
    ("paren", re.compile(r"^[（(]?\s*\d{1,3}\s*[）)]"), False),
)
_KEYWORDS = frozenset({
    "abstract", "summary", "introduction", "contents", "references", "reference", "bibliography",
    "appendix", "appendices", "acknowledgements", "acknowledgments", "acknowledgement",
    "摘要", "目录", "引言", "绪论", "前言", "参考文献", "附录", "致谢", "结论",
})


@dataclass(frozen=True)
class Numbering:
    style: str
    depth: int  # 1 for "2", 2 for "2.3", 3 for "2.3.1"; 1 for every other style


@dataclass(frozen=True)
class Title:
    """What relevelling reads of one title block."""

    text: str
    size: float  # the height of one of its lines, in page pixels (``title_size``)
    is_doc_title: bool = False


def numbering(text: str) -> Numbering | None:
    """The title's numbering style and depth, or None for an unnumbered title."""
    stripped = text.strip()
    for style, pattern, may_stand_alone in _STYLES:
        match = pattern.match(stripped)
        if match and (may_stand_alone or stripped[match.end():].strip()):
            depth = len(re.findall(r"\d+", match.group(1))) if style == "decimal" else 1
            return Numbering(style, depth)
    return None


def _style_levels(found: Sequence[Numbering]) -> dict[str, tuple[int, int]]:
    """Each style present → (its first level, its shallowest depth): styles take levels in
    nesting order, a decimal style as many as its depths span. Letters follow Roman
    numerals (I., A.); without them they number appendices beside the decimal chapters."""
    present = {n.style for n in found}
    levels: dict[str, tuple[int, int]] = {}
    level = TOP_LEVEL
    for style, _, _ in _STYLES:
        if style not in present or (style == "letter" and "roman" not in present and "decimal" in present):
            continue
        depths = [n.depth for n in found if n.style == style]
        levels[style] = (level, min(depths))
        level += max(depths) - min(depths) + 1
    if "letter" in present and "letter" not in levels:
        levels["letter"] = (levels["decimal"][0], 1)
    return levels


def _size_groups(sizes: Sequence[float]) -> list[float]:
    """The distinct sizes, largest first, sizes within ``SIZE_TOLERANCE`` of a group's
    largest counted as that group (one size as the layout model's boxes jitter)."""
    groups: list[float] = []
    for size in sorted(sizes, reverse=True):
        if not groups or size < groups[-1] * (1 - SIZE_TOLERANCE):
            groups.append(size)
    return groups


def _by_size(size: float, numbered: list[tuple[float, int]], groups: list[float]) -> int:
    """An unnumbered title's level: that of the numbered titles closest in size when
    there are any, else its size's rank among the titles."""
    if numbered:
        averages: dict[int, list[float]] = {}
        for numbered_size, level in numbered:
            averages.setdefault(level, []).append(numbered_size)
        return min(averages, key=lambda lv: (abs(sum(averages[lv]) / len(averages[lv]) - size), lv))
    rank = next(i for i, top in enumerate(groups) if size >= top * (1 - SIZE_TOLERANCE))
    return TOP_LEVEL + rank


def title_levels(titles: Sequence[Title]) -> list[int]:
    """The heading level of each title, in the order given (the document's order)."""
    found = [None if t.is_doc_title else numbering(t.text) for t in titles]
    styles = _style_levels([n for n in found if n is not None])
    levels: list[int | None] = []
    for number in found:
        if number is None:
            levels.append(None)
            continue
        first, shallowest = styles[number.style]
        levels.append(first + number.depth - shallowest)
    numbered = [(t.size, lv) for t, lv in zip(titles, levels) if lv is not None]
    plain = [t.size for t, n in zip(titles, found) if n is None and not t.is_doc_title]
    groups = _size_groups(plain)
    out = []
    for title, level in zip(titles, levels):
        if title.is_doc_title:
            level = 1
        elif level is None:
            keyword = title.text.strip().rstrip(":：").replace(" ", "").lower() in _KEYWORDS
            level = TOP_LEVEL if keyword else _by_size(title.size, numbered, groups)
        out.append(min(level, MAX_LEVEL))
    return out


def title_size(height: float, text: str) -> float:
    """A title's type size as its block shows it: the height of one of its lines."""
    return height / max(1, text.strip().count("\n") + 1)
