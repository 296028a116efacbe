"""Lines of text with their boxes → a region's content: rows in reading order, words
joined (no space between CJK characters), a table as HTML when its cells line up.

Shared by the engines that find lines themselves: the CPU OCR (the lines it detected)
and a PDF's text layer (``docparse.text_layer``: the words the file carries), so both
turn lines into text and tables the same way.
"""

from __future__ import annotations

import html
import unicodedata
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from docparse.geometry import Box, area, intersection
from docparse.types import LayoutBox, Task

# Lines overlapping vertically by at least this share of the shorter one are one row.
ROW_OVERLAP = 0.5


@dataclass(frozen=True)
class TextLine:
    """One line (or a cell's run) of text on the page, with its axis-aligned box in page pixels."""

    text: str
    box: Box


def assign_lines(lines: Sequence[TextLine], boxes: Sequence[LayoutBox]) -> list[list[TextLine]]:
    """The lines of each box: a line goes to the box holding most of its area (more than
    half of it), or to none. Every box competes, IMAGE and DROP ones too, so a header's
    line is not read into a neighbouring paragraph."""
    owned: list[list[TextLine]] = [[] for _ in boxes]
    for line in lines:
        line_area = area(line.box)
        if line_area <= 0 or not boxes:
            continue
        shares = [intersection(line.box, box.coordinate) / line_area for box in boxes]
        best = int(np.argmax(shares))
        if shares[best] > 0.5:
            owned[best].append(line)
    return owned


def region_content(task: Task, lines: Sequence[TextLine]) -> str:
    """TABLE: an HTML table when rows and columns are clear, else the text; otherwise
    the text."""
    rows = group_rows(lines)
    if task is Task.TABLE and (table := table_html(rows)) is not None:
        return table
    return "\n".join(join_words([line.text for line in row]) for row in rows)


def group_rows(lines: Sequence[TextLine]) -> list[list[TextLine]]:
    """Lines in reading order: rows top to bottom (lines overlapping vertically by at
    least ``ROW_OVERLAP`` of the shorter one share a row), each row left to right."""
    rows: list[list[TextLine]] = []
    for line in sorted(lines, key=lambda l: (l.box[1] + l.box[3]) / 2):
        if rows and _same_row(rows[-1], line):
            rows[-1].append(line)
        else:
            rows.append([line])
    return [sorted(row, key=lambda l: l.box[0]) for row in rows]


def _same_row(row: list[TextLine], line: TextLine) -> bool:
    top, bottom = min(l.box[1] for l in row), max(l.box[3] for l in row)
    overlap = min(bottom, line.box[3]) - max(top, line.box[1])
    shorter = min(bottom - top, line.box[3] - line.box[1])
    return shorter > 0 and overlap >= ROW_OVERLAP * shorter


def join_words(parts: Sequence[str]) -> str:
    """``parts`` joined by spaces, except between two CJK characters."""
    text = ""
    for part in (p.strip() for p in parts):
        if not part:
            continue
        if text and not (_is_cjk(text[-1]) and _is_cjk(part[0])):
            text += " "
        text += part
    return text


def _is_cjk(char: str) -> bool:
    return unicodedata.east_asian_width(char) in ("W", "F")


def table_html(rows: list[list[TextLine]]) -> str | None:
    """An HTML table with one cell per line, or ``None`` when the lines do not form a
    grid: fewer than 2 rows or 2 columns, or two lines of one row in the same column."""
    columns = column_spans([line for row in rows for line in row])
    if len(rows) < 2 or len(columns) < 2:
        return None
    grid = []
    for row in rows:
        cells: list[str | None] = [None] * len(columns)
        for line in row:
            column = next(i for i, (x1, x2) in enumerate(columns) if x1 <= line.box[0] <= x2)
            if cells[column] is not None:
                return None
            cells[column] = line.text.strip()
        grid.append(cells)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell or '')}</td>" for cell in cells) + "</tr>"
        for cells in grid
    )
    return f"<table>{body}</table>"


def column_spans(lines: Sequence[TextLine]) -> list[tuple[float, float]]:
    """Columns as the unions of lines' horizontal spans that overlap, left to right."""
    spans: list[tuple[float, float]] = []
    for x1, x2 in sorted((line.box[0], line.box[2]) for line in lines):
        if spans and x1 <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], x2))
        else:
            spans.append((x1, x2))
    return spans

