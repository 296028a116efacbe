"""Test documents made by the tests themselves: PDFs drawn with reportlab, images rendered
from them, and broken files.

Every page of ``sample_pdf`` draws real content inside the boxes of
``testkit.layout_template.TEMPLATE``, so what the stand-in layout model predicts
matches what is on the page. Pages are A4 portrait: 1191x1684 pixels at 144 dpi.
Output is deterministic (same bytes on every run), and cached: the bytes are immutable.
"""

from __future__ import annotations

import functools
import importlib.resources
import io

from PIL import Image
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Paragraph, Table, TableStyle

from docparse.render import PdfFile
from testkit.layout_template import TEMPLATE

# WenQuanYi Micro Hei, TrueType outlines that reportlab can embed, from a PyPI wheel (the
# `dev` extra) so that `make test` needs no system font; the same bytes as Debian's
# fonts-wqy-microhei. Noto CJK on PyPI is CFF OpenType, which reportlab cannot embed.
CJK_FONT_PACKAGE = "paperang_p2_fonts_cjk"
CJK_FONT_FILE = "fonts/wqy-microhei.ttc"
CJK_FONT = "WenQuanYiMicroHei"
PAGE_WIDTH, PAGE_HEIGHT = A4  # points
DPI = 144

HEADER_TEXT = "DocParse HPS test document"
TITLE_TEXT = "Document Layout Parsing Report"
ENGLISH_TEXT = (
    "Layout parsing finds the regions of a page and reads each of them: paragraphs, "
    "tables, formulas and figures are recognised separately and put back together in "
    "reading order."
)
CHINESE_TEXT = (
    "版面解析先找出页面中的各个区域，再分别识别段落、表格、公式和图片，"
    "最后按阅读顺序组合成完整的文档。"
)
PARAGRAPH_TITLE_TEXT = "1. Results"
TABLE_ROWS: list[list[str]] = [
    ["Model", "Pages", "Seconds", "Score"],
    ["Layout", "12", "3.1", "0.95"],
    ["Recognition", "12", "9.8", "0.91"],
    ["Assembly", "12", "0.4", "1.00"],
]
FORMULA_TEXT = "E = mc^2"  # drawn with a raised 2, next to a fraction (a + b) / 2c


def page_number_text(page: int) -> str:
    """The page number drawn on 1-based ``page``."""
    return f"Page {page}"


@functools.cache
def _register_cjk_font() -> str:
    """Registers the Chinese font with reportlab once; its name for paragraph styles."""
    try:
        font = importlib.resources.files(CJK_FONT_PACKAGE).joinpath(CJK_FONT_FILE)
    except ModuleNotFoundError:
        raise RuntimeError(
            f"the Chinese test font comes from the {CJK_FONT_PACKAGE!r} package: "
            "install the project's `dev` extra (`make install`)"
        ) from None
    with importlib.resources.as_file(font) as path:
        pdfmetrics.registerFont(TTFont(CJK_FONT, str(path), subfontIndex=0))
    return CJK_FONT


def _box(label: str) -> tuple[float, float, float, float]:
    """The template box of ``label`` in reportlab points: x, y (bottom), width, height."""
    x1, y1, x2, y2 = dict(TEMPLATE)[label]
    return (
        x1 * PAGE_WIDTH,
        (1 - y2) * PAGE_HEIGHT,
        (x2 - x1) * PAGE_WIDTH,
        (y2 - y1) * PAGE_HEIGHT,
    )


def _draw_page(canvas: Canvas, page: int) -> None:
    x, y, w, h = _box("header")
    canvas.setFont("Helvetica", 9)
    canvas.setFillColor(colors.grey)
    canvas.drawString(x, y + h / 3, HEADER_TEXT)
    canvas.setFillColor(colors.black)

    x, y, w, h = _box("doc_title")
    canvas.setFont("Helvetica-Bold", 22)
    canvas.drawCentredString(x + w / 2, y + h / 3, TITLE_TEXT)

    x, y, w, h = _box("text")
    english_style = ParagraphStyle("en", fontName="Helvetica", fontSize=11, leading=15)
    chinese_style = ParagraphStyle(
        "zh", fontName=_register_cjk_font(), fontSize=11, leading=16, wordWrap="CJK"
    )
    english = Paragraph(ENGLISH_TEXT, english_style)
    chinese = Paragraph(CHINESE_TEXT, chinese_style)
    _, en_height = english.wrapOn(canvas, w, h)
    _, zh_height = chinese.wrapOn(canvas, w, h)
    english.drawOn(canvas, x, y + h - en_height)
    chinese.drawOn(canvas, x, y + h - en_height - 10 - zh_height)

    x, y, w, h = _box("paragraph_title")
    canvas.setFont("Helvetica-Bold", 15)
    canvas.drawString(x, y + h / 4, PARAGRAPH_TITLE_TEXT)

    x, y, w, h = _box("table")
    columns, rows = len(TABLE_ROWS[0]), len(TABLE_ROWS)
    table = Table(TABLE_ROWS, colWidths=[w / columns] * columns, rowHeights=[h / rows] * rows)
    table.setStyle(
        TableStyle(
            [
                ("GRID", (0, 0), (-1, -1), 0.8, colors.black),
                ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"),
                ("FONTSIZE", (0, 0), (-1, -1), 11),
                ("ALIGN", (0, 0), (-1, -1), "CENTER"),
                ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
                ("BACKGROUND", (0, 0), (-1, 0), colors.lightgrey),
            ]
        )
    )
    table.wrapOn(canvas, w, h)
    table.drawOn(canvas, x, y)

    _draw_formula(canvas, *_box("display_formula"))
    _draw_figure(canvas, *_box("image"))

    x, y, w, h = _box("number")
    canvas.setFont("Helvetica", 10)
    canvas.drawCentredString(x + w / 2, y + h / 3, page_number_text(page))


def _draw_formula(canvas: Canvas, x: float, y: float, w: float, h: float) -> None:
    """E = mc² and, beside it, the fraction (a + b) / 2c with a drawn bar."""
    middle = y + h / 2
    left = x + 0.08 * w
    canvas.setFont("Times-Italic", 20)
    canvas.drawString(left, middle - 7, "E = mc")
    canvas.setFont("Times-Roman", 12)
    canvas.drawString(left + canvas.stringWidth("E = mc", "Times-Italic", 20) + 1, middle + 4, "2")
    canvas.setFont("Times-Italic", 20)
    left = x + 0.55 * w
    canvas.drawString(left, middle - 7, "x =")
    bar_left, bar_right = left + 36, left + 100
    canvas.setLineWidth(1)
    canvas.line(bar_left, middle, bar_right, middle)
    canvas.drawCentredString((bar_left + bar_right) / 2, middle + 5, "a + b")
    canvas.drawCentredString((bar_left + bar_right) / 2, middle - 21, "2c")


def _draw_figure(canvas: Canvas, x: float, y: float, w: float, h: float) -> None:
    """A small bar chart with a circle: shapes, no text."""
    canvas.setLineWidth(1.5)
    canvas.rect(x + 4, y + 4, w - 8, h - 8)
    bars = [(0.35, "#1f77b4"), (0.6, "#ff7f0e"), (0.45, "#2ca02c"), (0.8, "#d62728"), (0.55, "#9467bd")]
    bar_width = (w * 0.6) / len(bars)
    for i, (fraction, colour) in enumerate(bars):
        canvas.setFillColor(colors.HexColor(colour))
        left = x + 16 + i * bar_width * 1.1
        canvas.rect(left, y + 14, bar_width * 0.9, (h - 32) * fraction, fill=1)
    canvas.setFillColor(colors.orange)
    canvas.circle(x + w * 0.82, y + h / 2, min(w, h) * 0.2, fill=1)
    canvas.setFillColor(colors.black)


def _new_canvas(buffer: io.BytesIO, **options: object) -> Canvas:
    canvas = Canvas(buffer, pagesize=A4, invariant=1, **options)
    canvas.setTitle("DocParse HPS test document")
    return canvas


@functools.cache
def sample_pdf(pages: int = 3) -> bytes:
    """A PDF of ``pages`` A4 pages laid out like ``TEMPLATE``; the page numbers differ."""
    buffer = io.BytesIO()
    canvas = _new_canvas(buffer)
    for page in range(1, pages + 1):
        _draw_page(canvas, page)
        canvas.showPage()
    canvas.save()
    return buffer.getvalue()


def _render_pages(pages: int) -> list[Image.Image]:
    """The pages of ``sample_pdf(pages)`` at 144 dpi, as Pillow images."""
    pdf = PdfFile(sample_pdf(pages))
    try:
        return [Image.fromarray(pdf.render(i, DPI, max_pixels=10**9)[0]) for i in range(pages)]
    finally:
        pdf.close()


@functools.cache
def sample_image(fmt: str = "PNG") -> bytes:
    """Page 1 of ``sample_pdf`` at 144 dpi (1191x1684) saved in Pillow format ``fmt``
    (PNG, JPEG, TIFF, BMP, WEBP)."""
    buffer = io.BytesIO()
    _render_pages(1)[0].save(buffer, format=fmt)
    return buffer.getvalue()


@functools.cache
def multipage_tiff(pages: int = 3) -> bytes:
    """The pages of ``sample_pdf(pages)`` as one multi-page TIFF."""
    first, *rest = _render_pages(pages)
    buffer = io.BytesIO()
    first.save(buffer, format="TIFF", save_all=True, append_images=rest, compression="tiff_deflate")
    return buffer.getvalue()


def encrypted_pdf() -> bytes:
    """A one-page PDF that opens only with the user password "secret"."""
    buffer = io.BytesIO()
    canvas = _new_canvas(buffer, encrypt="secret")
    canvas.setFont("Helvetica", 12)
    canvas.drawString(72, 720, "This page is encrypted.")
    canvas.showPage()
    canvas.save()
    return buffer.getvalue()


def corrupt_pdf() -> bytes:
    """Starts like a PDF, then nothing a PDF reader can recover."""
    return b"%PDF-1.7\n" + bytes(range(256)) * 8 + b"\n%%EOF\n"


@functools.cache
def blank_pdf(pages: int = 1) -> bytes:
    """``pages`` empty A4 pages."""
    buffer = io.BytesIO()
    canvas = _new_canvas(buffer)
    for _ in range(pages):
        canvas.showPage()
    canvas.save()
    return buffer.getvalue()
