"""A born-digital PDF's own text, read region by region instead of recognised.

Most PDFs carry their text: reading a text region from the file is exact and costs
about a millisecond, where OCR costs seconds on a CPU and a VLM call on a GPU. The text
layer cannot always be trusted, so each region is judged on its own and goes to the
recognizer when its text is missing or unreliable:

- no word in the region (a scanned page, text drawn as shapes or as a picture);
- more than ``MAX_UNRELIABLE_SHARE`` of its characters unusable: private-use code
  points (a font whose cmap maps glyphs to U+E000…), U+FFFD, control characters,
  characters pdfium could not map to Unicode (no ToUnicode), or invisible text (render
  mode 3 or 7, as the hidden OCR layer over a scan);
- words with no ink under them (white text, text covered by a picture) count as unusable.

Two halves: ``extract`` runs where the PDF is open (a render worker, pdfium's lock held)
and returns the page's words in page-image pixels; ``read_regions`` runs in the
orchestrator on those words, the layout regions and the page image.
"""

from __future__ import annotations

import ctypes
import unicodedata
from typing import Sequence

import numpy as np
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from docparse.recognition.lines import TextLine, assign_lines, join_words, region_content
from docparse.responses import PageTextLayer, TextWord
from docparse.types import READ_TASKS, RegionJob, RegionResult, Task

#: The source a block read from the PDF's text says it came from.
TEXT_LAYER_SOURCE = "text_layer"
# Above this share of unusable characters a region's text layer is not used. A few are
# tolerated (and left out): a ligature mapped to a private-use code point in a paragraph.
MAX_UNRELIABLE_SHARE = 0.02
# A word has ink under it when a pixel of its box is darker than this (0-255, any channel).
INK_LEVEL = 200
# Words of one row closer than this many row heights are one run (a table cell's words).
CELL_GAP = 0.8

_INVISIBLE_MODES = (3, 7)  # PDF text render modes that paint nothing (7: clip only)
_UNUSABLE_CATEGORIES = ("Co", "Cs", "Cc", "Cn")  # private use, surrogate, control, unassigned
_SPACES = frozenset({0x09, 0x0A, 0x0D, 0x20, 0xA0, 0x3000, 0xFEFF})


# --- extraction (render worker) -----------------------------------------------------------


def _unusable(code: int) -> bool:
    return code == 0 or code == 0xFFFD or unicodedata.category(chr(code)) in _UNUSABLE_CATEGORIES


class _PageToImage:
    """pdfium's page → device mapping for the bitmap ``page.render(scale=…)`` draws
    (crop box, rotation), as an affine map: three points asked of pdfium on a device
    ``_SUBPIXEL`` times larger, so the integers it answers are precise to a subpixel."""

    _SUBPIXEL = 64

    def __init__(self, page: pdfium.PdfPage, scale: float) -> None:
        width, height = (int(np.ceil(size * scale)) for size in page.get_size())
        k = self._SUBPIXEL
        x, y = ctypes.c_int(), ctypes.c_int()

        def device(px: float, py: float) -> np.ndarray:
            pdfium_c.FPDF_PageToDevice(page.raw, 0, 0, width * k, height * k, 0, px, py, x, y)
            return np.array([x.value, y.value], dtype=np.float64) / k

        origin = device(0.0, 0.0)
        self.offset = origin
        self.matrix = np.stack([(device(100.0, 0.0) - origin) / 100.0, (device(0.0, 100.0) - origin) / 100.0], axis=1)

    def box(self, left: float, bottom: float, right: float, top: float) -> tuple[float, float, float, float]:
        corners = self.matrix @ np.array([[left, right, left, right], [bottom, bottom, top, top]]) + self.offset[:, None]
        return (float(corners[0].min()), float(corners[1].min()), float(corners[0].max()), float(corners[1].max()))


class _WordBuilder:
    """Characters in the text page's order → words: a new word at a space (pdfium's own
    or the file's), a line change, or a jump along the line."""

    def __init__(self, to_image: _PageToImage) -> None:
        self._to_image = to_image
        self.words: list[TextWord] = []
        self._text: list[str] = []
        self._box: list[float] | None = None  # left, bottom, right, top in page points
        self._chars = self._unreliable = 0

    def add(self, code: int, box: tuple[float, float, float, float], unreliable: bool) -> None:
        left, bottom, right, top = box
        if self._box is not None and not self._continues(left, bottom, top):
            self.end()
        if self._box is None:
            self._box = [left, bottom, right, top]
        else:
            b = self._box
            b[0], b[1], b[2], b[3] = min(b[0], left), min(b[1], bottom), max(b[2], right), max(b[3], top)
        self._chars += 1
        if unreliable:
            self._unreliable += 1
        if not _unusable(code):
            self._text.append(chr(code))

    def _continues(self, left: float, bottom: float, top: float) -> bool:
        assert self._box is not None
        height = max(self._box[3] - self._box[1], top - bottom, 1e-6)
        same_line = abs((self._box[1] + self._box[3]) / 2 - (bottom + top) / 2) < 0.5 * height
        # A ligature's second character shares the first one's box: not a jump back.
        return same_line and self._box[0] - 0.5 * height < left < self._box[2] + 0.5 * height

    def end(self) -> None:
        """The word so far is done. One lone unusable character (a bullet or a symbol
        from a private-use font) is not a word and not counted: no text is lost."""
        box, text = self._box, "".join(self._text)
        if box is not None and (text or self._chars > 1):
            x1, y1, x2, y2 = self._to_image.box(*box)
            self.words.append((text, round(x1, 1), round(y1, 1), round(x2, 1), round(y2, 1),
                               self._chars, self._unreliable))
        self._text, self._box, self._chars, self._unreliable = [], None, 0, 0


def extract(page: pdfium.PdfPage, text_page: pdfium.PdfTextPage, scale: float) -> PageTextLayer:
    """The words of ``page`` in the pixels of ``page.render(scale=scale)``. The caller
    holds ``docparse.render.PDFIUM_LOCK``."""
    builder = _WordBuilder(_PageToImage(page, scale))
    raw = text_page.raw
    rect = pdfium_c.FS_RECTF()
    invisible: dict[int | None, bool] = {}
    for index in range(pdfium_c.FPDFText_CountChars(raw)):
        code = pdfium_c.FPDFText_GetUnicode(raw, index)
        if code in _SPACES or pdfium_c.FPDFText_IsGenerated(raw, index) == 1:
            builder.end()
            continue
        if not pdfium_c.FPDFText_GetLooseCharBox(raw, index, rect):
            continue
        text_object = pdfium_c.FPDFText_GetTextObject(raw, index)
        owner = ctypes.cast(text_object, ctypes.c_void_p).value
        if owner not in invisible:
            invisible[owner] = bool(owner) and pdfium_c.FPDFTextObj_GetTextRenderMode(text_object) in _INVISIBLE_MODES
        unreliable = invisible[owner] or _unusable(code) or pdfium_c.FPDFText_HasUnicodeMapError(raw, index) == 1
        builder.add(code, (rect.left, rect.bottom, rect.right, rect.top), unreliable)
    builder.end()
    return PageTextLayer(words=builder.words)


# --- reading regions (orchestrator) ----------------------------------------------------------


def read_regions(
    layer: PageTextLayer, image: np.ndarray, jobs: Sequence[RegionJob], tasks: frozenset[Task]
) -> dict[int, str]:
    """The content of each job (by index) whose task is in ``tasks`` and whose text
    layer is reliable; the others are left to the recognizer. The page's words are
    joined into runs (lines, or table cells) first, and each run goes to the region
    holding most of it, as the CPU OCR assigns its lines: every region competes, so a
    header's words never land in the paragraph beside it, and a line stays whole where
    the detector's boxes overlap."""
    found = runs(layer.words)
    owned = assign_lines([line for line, _ in found], [job.box for job in jobs])
    words_of = {id(line): words for line, words in found}
    read: dict[int, str] = {}
    for index, job in enumerate(jobs):
        words = [word for line in owned[index] for word in words_of[id(line)]]
        if job.task not in tasks:
            continue
        if words and _reliable(words, image):
            read[index] = region_content(job.task, owned[index])
        elif not words and any(_centre_inside(line.box, job.box.coordinate) for line, _ in found):
            read[index] = ""  # its text went to a region overlapping it, as the OCR's lines would
    return read


def _centre_inside(box: Sequence[float], region: Sequence[float]) -> bool:
    x, y = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return region[0] <= x <= region[2] and region[1] <= y <= region[3]


def _reliable(words: Sequence[TextWord], image: np.ndarray) -> bool:
    """Few enough unusable characters, counting a word without ink as all unusable."""
    chars = sum(w[5] for w in words)
    unreliable = sum(w[5] if not _has_ink(w, image) else w[6] for w in words)
    return chars > 0 and unreliable <= MAX_UNRELIABLE_SHARE * chars


def _has_ink(word: TextWord, image: np.ndarray) -> bool:
    height, width = image.shape[:2]
    x1, y1 = max(0, int(word[1])), max(0, int(word[2]))
    x2, y2 = min(width, int(np.ceil(word[3]))), min(height, int(np.ceil(word[4])))
    return x2 > x1 and y2 > y1 and int(image[y1:y2, x1:x2].min()) < INK_LEVEL


def runs(words: Sequence[TextWord]) -> list[tuple[TextLine, list[TextWord]]]:
    """The words as runs of text, each with its words: one per row, or per cell where a
    row's words stand apart (more than ``CELL_GAP`` row heights), so tables keep their
    columns and the columns of a page stay apart."""
    ordered = sorted(words, key=lambda w: ((w[2] + w[4]) / 2, w[1]))
    rows: list[list[TextWord]] = []
    for word in ordered:
        if rows and _same_row(rows[-1], word):
            rows[-1].append(word)
        else:
            rows.append([word])
    found = []
    for row in rows:
        row.sort(key=lambda w: w[1])
        height = max(w[4] - w[2] for w in row)
        run = [row[0]]
        for word in row[1:]:
            if word[1] - run[-1][3] > CELL_GAP * height:
                found.append((_line(run), run))
                run = []
            run.append(word)
        found.append((_line(run), run))
    return found


def _same_row(row: list[TextWord], word: TextWord) -> bool:
    top, bottom = min(w[2] for w in row), max(w[4] for w in row)
    overlap = min(bottom, word[4]) - max(top, word[2])
    return overlap >= 0.5 * min(bottom - top, word[4] - word[2])


def _line(words: list[TextWord]) -> TextLine:
    box = (min(w[1] for w in words), min(w[2] for w in words), max(w[3] for w in words), max(w[4] for w in words))
    return TextLine(join_words([w[0] for w in words]), box)


# --- which recognizer uses it for what --------------------------------------------------------


def by_default(recognizer: object) -> bool:
    """Whether a request that does not say uses the text layer with ``recognizer``
    (``text_layer_by_default``: the CPU OCR's yes, a VLM's no)."""
    return bool(getattr(recognizer, "text_layer_by_default", False))


def tasks_of(recognizer: object) -> frozenset[Task]:
    """The tasks whose regions the text layer reads for ``recognizer``
    (``text_layer_tasks``): text alone, unless the recognizer reads tables and formulas
    as lines of text too (the CPU OCR), when the text layer's lines are as good and exact."""
    return frozenset(getattr(recognizer, "text_layer_tasks", frozenset({Task.TEXT})))


def name_sources(jobs: Sequence[RegionJob], results: Sequence[RegionResult], recognizer: str) -> None:
    """Every read region says who read it: the text layer (already set) or ``recognizer``."""
    for job, result in zip(jobs, results):
        if job.task in READ_TASKS and result.source is None:
            result.source = recognizer
