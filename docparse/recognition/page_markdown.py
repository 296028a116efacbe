"""A page-mode VLM's answer (the whole page as Markdown, or OCRFlux's JSON around it)
split into labelled blocks, so that a page read in one call still gives the page result
its ``parsing_res_list`` blocks: headings become titles, tables tables, ``$$…$$``
display formulas, the rest text paragraphs. Markdown tells no more than that, so no
more is claimed (no boxes: the model gave none)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from docparse.errors import RecognitionError

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_TABLE_ROW = re.compile(r"^\s*\|.*\|\s*$")
_HTML_TABLE_START = re.compile(r"^\s*<table\b", re.IGNORECASE)
_HTML_TABLE_END = re.compile(r"</table>\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class PageBlock:
    """One block of a page answer: a layout label and its content (Markdown/HTML/LaTeX)."""

    label: str
    content: str


def answer_text(answer: str, output: str) -> str:
    """The page's Markdown: the answer itself, or for ``json`` its ``natural_text``
    (OCRFlux, olmOCR); a JSON answer without it is a recognition failure."""
    if output != "json":
        return answer
    try:
        data = json.loads(answer)
    except ValueError:
        raise RecognitionError(f"VLM page answer is not JSON: {answer[:200]!r}") from None
    text = data.get("natural_text") if isinstance(data, dict) else None
    if text is None and isinstance(data, dict) and "natural_text" in data:
        return ""
    if not isinstance(text, str):
        raise RecognitionError(f"VLM page answer has no natural_text: {answer[:200]!r}")
    return text


def split_blocks(markdown: str) -> list[PageBlock]:
    """The blocks of a page's Markdown, in reading order. The first ``#`` heading is the
    document title, other headings paragraph titles."""
    blocks: list[PageBlock] = []
    lines = markdown.replace("\r\n", "\n").split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        if heading := _HEADING.match(line):
            title = heading.group(2)
            first_h1 = len(heading.group(1)) == 1 and not any(b.label == "doc_title" for b in blocks)
            blocks.append(PageBlock("doc_title" if first_h1 else "paragraph_title", title))
            i += 1
            continue
        end, block = _special_block(lines, i)
        if block is None:
            end = _paragraph_end(lines, i)
            block = PageBlock("text", "\n".join(lines[i:end]).strip())
        blocks.append(block)
        i = end
    return blocks


def _special_block(lines: list[str], start: int) -> tuple[int, PageBlock | None]:
    """A pipe table, an HTML table or a ``$$`` formula starting at ``start``."""
    line = lines[start]
    if _TABLE_ROW.match(line):
        end = start
        while end < len(lines) and _TABLE_ROW.match(lines[end]):
            end += 1
        return end, PageBlock("table", "\n".join(lines[start:end]).strip())
    if _HTML_TABLE_START.match(line):
        end = start
        while end < len(lines) and not _HTML_TABLE_END.search(lines[end]):
            end += 1
        end = min(end + 1, len(lines))
        return end, PageBlock("table", "\n".join(lines[start:end]).strip())
    if line.strip().startswith("$$"):
        end = start
        text = line.strip()
        while not (len(text) > 2 and text.endswith("$$")) and end + 1 < len(lines):
            end += 1
            text += "\n" + lines[end].strip()
        formula = text.strip()[2:]
        formula = formula[:-2] if formula.endswith("$$") else formula
        return end + 1, PageBlock("display_formula", formula.strip())
    return start, None


def _paragraph_end(lines: list[str], start: int) -> int:
    """Where the paragraph at ``start`` ends: a blank line or the start of another block."""
    end = start + 1
    while end < len(lines) and lines[end].strip():
        line = lines[end]
        if _HEADING.match(line) or _TABLE_ROW.match(line) or _HTML_TABLE_START.match(line) or line.strip().startswith("$$"):
            break
        end += 1
    return end
