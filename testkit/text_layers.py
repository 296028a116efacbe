"""PDFs whose text layer is good, missing, broken or hidden, for the text-layer tests
and benchmark (``docparse.text_layer``). Each page is the sample page of
``testkit.documents`` (same regions, same text), its text region drawn differently:

- ``good``: as is, real text;
- ``scanned``: the whole page a picture (no text layer at all);
- ``private_use``: the paragraph in a font whose cmap maps each letter to U+E000 + its
  code, so the file's text is private-use code points that look right on the page;
- ``hidden_ocr``: a scan with an invisible text layer over it (render mode 3, as OCR
  tools write it), which is not what the page shows to the reader;
- ``picture_text``: the text region a picture of itself, the rest of the page real text
  (a page that mixes both).
"""

from __future__ import annotations

import functools
import importlib.resources
import io

from fontTools.ttLib import TTFont as FontFile
from PIL import Image
from reportlab.lib.utils import ImageReader
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

from testkit.documents import (
    CJK_FONT_FILE,
    CJK_FONT_PACKAGE,
    DPI,
    ENGLISH_TEXT,
    PAGE_HEIGHT,
    PAGE_WIDTH,
    _box,
    _draw_page,
    _new_canvas,
    _render_pages,
)

KINDS = ("good", "scanned", "private_use", "hidden_ocr", "picture_text")
PRIVATE_USE_FONT = "PrivateUseLatin"
PRIVATE_USE_BASE = 0xE000


def private_use(text: str) -> str:
    """``text`` as the private-use font encodes it: every character but spaces moved to U+E000 + its code."""
    return "".join(c if c == " " else chr(PRIVATE_USE_BASE + ord(c)) for c in text)


@functools.cache
def _register_private_use_font() -> str:
    """The Chinese test font with each printable ASCII glyph also at U+E000 + its code:
    text drawn at those code points looks right, and its extracted text is private-use.
    About a second, once."""
    with importlib.resources.as_file(importlib.resources.files(CJK_FONT_PACKAGE).joinpath(CJK_FONT_FILE)) as path:
        font = FontFile(str(path), fontNumber=0, recalcTimestamp=False)
    for table in font["cmap"].tables:  # the whole font: reportlab embeds a subset of what is drawn
        if table.isUnicode():
            table.cmap.update({PRIVATE_USE_BASE + code: glyph for code, glyph in list(table.cmap.items()) if 0x20 < code < 0x7F})
    for record in font["name"].names:  # a name of its own: reportlab embeds fonts by it
        if record.nameID in (1, 3, 4, 6):
            record.string = PRIVATE_USE_FONT
    buffer = io.BytesIO()
    font.save(buffer)
    buffer.seek(0)
    pdfmetrics.registerFont(TTFont(PRIVATE_USE_FONT, buffer))
    return PRIVATE_USE_FONT


def _private_use_body(canvas: Canvas, x: float, y: float, w: float, h: float) -> None:
    canvas.setFont(_register_private_use_font(), 11)
    words, line, top = ENGLISH_TEXT.split(), "", y + h - 14
    for word in words:  # wrapped by hand: reportlab measures the private-use glyphs fine
        candidate = f"{line} {word}".strip()
        if canvas.stringWidth(private_use(candidate), PRIVATE_USE_FONT, 11) > w and line:
            canvas.drawString(x, top, private_use(line))
            line, top = word, top - 15
        else:
            line = candidate
    canvas.drawString(x, top, private_use(line))


def _picture(canvas: Canvas, image: Image.Image, x: float, y: float, w: float, h: float) -> None:
    canvas.drawImage(ImageReader(image), x, y, w, h)


def _region_picture(page: Image.Image, x: float, y: float, w: float, h: float) -> Image.Image:
    """The part of the rendered sample page under the box ``x, y, w, h`` (points)."""
    scale = DPI / 72
    left, top = x * scale, (PAGE_HEIGHT - y - h) * scale
    return page.crop((round(left), round(top), round(left + w * scale), round(top + h * scale)))


def _draw(canvas: Canvas, kind: str, number: int) -> None:
    picture = _render_pages(1)[0]
    if kind == "good":
        _draw_page(canvas, number)
    elif kind == "scanned":
        _picture(canvas, picture, 0, 0, PAGE_WIDTH, PAGE_HEIGHT)
    elif kind == "private_use":
        _draw_page(canvas, number, _private_use_body)
    elif kind == "hidden_ocr":
        _picture(canvas, picture, 0, 0, PAGE_WIDTH, PAGE_HEIGHT)
        x, y, w, h = _box("text")
        text = canvas.beginText(x, y + h - 14)
        text.setTextRenderMode(3)
        text.setFont("Helvetica", 11)
        text.textLine(ENGLISH_TEXT[:60])
        canvas.drawText(text)
    elif kind == "picture_text":
        _draw_page(canvas, number, lambda c, x, y, w, h: _picture(c, _region_picture(picture, x, y, w, h), x, y, w, h))
    else:
        raise ValueError(f"unknown page kind {kind!r}; known: {', '.join(KINDS)}")


@functools.cache
def text_layer_pdf(*kinds: str) -> bytes:
    """A PDF with one page of each of ``kinds`` (see the module's docstring), in order."""
    buffer = io.BytesIO()
    canvas = _new_canvas(buffer)
    for number, kind in enumerate(kinds, 1):
        _draw(canvas, kind, number)
        canvas.showPage()
    canvas.save()
    return buffer.getvalue()
