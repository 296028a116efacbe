"""Tables continued on the next page: their shape, their repeated header, one table of two.

The recogniser answers a table as HTML (GLM-OCR: ``<table><tr><td>…``, cells with
colspan/rowspan) or, now and then, as a Markdown pipe table. Two halves are one table when
they have the same number of columns (a cell spanning two columns counts twice, a cell
spanning rows keeps its columns taken below). The second half often repeats the header:
its leading rows equal to the first half's leading rows are left out of the merged table,
so no row appears twice. A small regular-expression reader is enough for what a
recogniser writes and needs no HTML library; a table it cannot read is never merged.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

MAX_HEADER_ROWS = 5  # a repeated header longer than this is taken for data
_ROW = re.compile(r"<tr\b[^>]*>.*?</tr\s*>", re.I | re.S)
_CELL = re.compile(r"<(t[dh])\b([^>]*)>(.*?)</\1\s*>", re.I | re.S)
_SPAN = re.compile(r"\b(colspan|rowspan)\s*=\s*[\"']?\s*(\d+)", re.I)
_TAG = re.compile(r"<[^>]*>")
_ROW_END = re.compile(r"</tr\s*>", re.I)
_PIPE_SEPARATOR = re.compile(r"^:?-+:?$")


@dataclass(frozen=True)
class Cell:
    text: str  # normalised: tags gone, no spaces, full-width folded (for comparing)
    colspan: int
    rowspan: int


@dataclass(frozen=True)
class Row:
    raw: str  # the row as written (an HTML <tr>…</tr>, or one pipe-table line)
    cells: tuple[Cell, ...]

    def key(self) -> tuple[tuple[str, int], ...]:
        return tuple((cell.text, cell.colspan) for cell in self.cells)


@dataclass(frozen=True)
class Table:
    kind: str  # "html" or "pipe"
    rows: tuple[Row, ...]  # a pipe table's separator line is not a row
    columns: int


def _fold(text: str) -> str:
    """Cell text for comparing: no tags, no whitespace, full-width letters as ASCII."""
    return "".join(unicodedata.normalize("NFKC", _TAG.sub("", text)).split())


def _span(attributes: str, name: str) -> int:
    for found, value in _SPAN.findall(attributes):
        if found.lower() == name:
            return max(1, min(int(value), 1000))
    return 1


def _html_rows(content: str) -> tuple[Row, ...]:
    rows = []
    for match in _ROW.finditer(content):
        cells = tuple(
            Cell(_fold(body), _span(attrs, "colspan"), _span(attrs, "rowspan"))
            for _, attrs, body in _CELL.findall(match.group(0))
        )
        rows.append(Row(match.group(0), cells))
    return tuple(rows)


def column_count(rows: tuple[Row, ...]) -> int:
    """The table's width in columns: each row's cells placed left to right past the
    columns that cells spanning down from rows above still take."""
    taken: dict[int, set[int]] = {}
    widest = 0
    for r, row in enumerate(rows):
        column = 0
        for cell in row.cells:
            while column in taken.get(r, ()):
                column += 1
            for below in range(r, r + cell.rowspan):
                taken.setdefault(below, set()).update(range(column, column + cell.colspan))
            column += cell.colspan
        widest = max(widest, column, max(taken.get(r, {-1})) + 1)
    return widest


def _pipe_cells(line: str) -> list[str]:
    inner = line.strip()
    inner = inner[1:] if inner.startswith("|") else inner
    inner = inner[:-1] if inner.endswith("|") and not inner.endswith("\\|") else inner
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", inner)]


def _pipe_table(content: str) -> Table | None:
    lines = [line for line in content.strip().splitlines() if line.strip()]
    if len(lines) < 2 or not all(line.lstrip().startswith("|") for line in lines):
        return None
    rows = []
    for line in lines:
        cells = _pipe_cells(line)
        if all(_PIPE_SEPARATOR.match(cell) for cell in cells):
            continue
        rows.append(Row(line, tuple(Cell(_fold(cell), 1, 1) for cell in cells)))
    return Table("pipe", tuple(rows), max((len(row.cells) for row in rows), default=0))


def parse_table(content: str) -> Table | None:
    """The table a block holds, or None when it is not one table this module can read."""
    text = content.strip()
    if text[:6].lower() == "<table" and text[-8:].lower() == "</table>":
        rows = _html_rows(text)
        return Table("html", rows, column_count(rows)) if rows else None
    return _pipe_table(text)


def repeated_header_rows(first: Table, continued: Table) -> int:
    """How many of ``continued``'s leading rows repeat ``first``'s leading rows (the
    header printed again on the new page): same cell texts, same spans, in order."""
    count = 0
    for mine, theirs in zip(first.rows[:MAX_HEADER_ROWS], continued.rows):
        if mine.key() != theirs.key():
            break
        count += 1
    return count


def same_structure(first: Table, continued: Table) -> bool:
    return first.kind == continued.kind and first.columns == continued.columns > 0


def merge_tables(first_content: str, continued_content: str) -> str | None:
    """One table: ``first_content`` with the rows of ``continued_content`` after its own,
    less the repeated header. None when the two are not halves of one table."""
    first, continued = parse_table(first_content), parse_table(continued_content)
    if first is None or continued is None or not same_structure(first, continued):
        return None
    rows = continued.rows[repeated_header_rows(first, continued):]
    if first.kind == "pipe":
        return "\n".join([first_content.rstrip(), *(row.raw.strip() for row in rows)])
    text = first_content.strip()
    last_row_end = list(_ROW_END.finditer(text))[-1].end()
    return text[:last_row_end] + "".join(row.raw for row in rows) + text[last_row_end:]
