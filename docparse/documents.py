"""Bytes → document: what kind of file it is, which pages are selected, which limits apply.

A document is a PDF (one page per PDF page) or an image (one page per frame: multi-page
TIFF, animated WebP/PNG). Pages are rendered lazily, one at a time, so a long document
never holds more than one page's pixels. The pixels themselves come from
``docparse.render``.
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Iterator

import cv2
import numpy as np
from PIL import Image

from docparse.errors import InvalidDocumentError, InvalidRequestError, LimitExceededError, clip
from docparse.jpeg import encode_jpeg
from docparse.render import ImageFile, PdfFile, RenderedJpeg, fit_scale
from docparse.render_pool import RenderPool
from docparse.responses import PageTextLayer
from docparse.settings import MIN_DPI, Settings

PDF = "pdf"
IMAGE = "image"

# Sniffed format → how messages name it.
FORMAT_NAMES = {
    "PDF": "PDF", "PNG": "PNG", "JPEG": "JPEG", "TIFF": "TIFF", "BMP": "BMP", "WEBP": "WebP"
}
SUPPORTED_TYPES = ", ".join(FORMAT_NAMES.values())
FILE_TYPES = {0: PDF, 1: IMAGE}  # the request's fileType
_FILE_TYPE_NAMES = {0: "0 (PDF)", 1: "1 (image)"}

_IMAGE_MAGIC: list[tuple[bytes, str]] = [
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"II*\x00", "TIFF"),  # little-endian
    (b"MM\x00*", "TIFF"),  # big-endian
]
# A BMP's "BM" is too short to trust alone: its info header size must be a known one.
_BMP_INFO_SIZES = {12, 40, 52, 56, 64, 108, 124}
_PDF_MAGIC_WINDOW = 1024  # readers accept junk before "%PDF-" within the first KiB


def sniff_format(data: bytes) -> str | None:
    """"PDF", "PNG", "JPEG", "TIFF", "BMP" or "WEBP" from the magic bytes, else None."""
    for magic, name in _IMAGE_MAGIC:
        if data.startswith(magic):
            return name
    if data.startswith(b"BM") and int.from_bytes(data[14:18], "little") in _BMP_INFO_SIZES:
        return "BMP"
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "WEBP"
    if b"%PDF-" in data[:_PDF_MAGIC_WINDOW]:
        return "PDF"
    return None


def sniff_kind(data: bytes) -> str | None:
    """"pdf", "image" or None (not a PDF or a supported image)."""
    name = sniff_format(data)
    if name is None:
        return None
    return PDF if name == "PDF" else IMAGE


def resolve_kind(data: bytes, file_type: int | None) -> str:
    """The kind to open ``data`` as. The bytes decide; ``fileType`` may only confirm them,
    so that a mislabelled file is refused with a message naming both."""
    if file_type is not None and file_type not in FILE_TYPES:
        raise InvalidRequestError(f"fileType must be 0 (PDF) or 1 (image), got {file_type!r}")
    if not data:
        raise InvalidDocumentError("the file is empty")
    name = sniff_format(data)
    if name is None:
        prefix = f"fileType is {_FILE_TYPE_NAMES[file_type]} but " if file_type is not None else ""
        raise InvalidDocumentError(
            f"{prefix}the file is not a PDF or a supported image (supported: {SUPPORTED_TYPES})"
        )
    kind = PDF if name == "PDF" else IMAGE
    if file_type is not None and FILE_TYPES[file_type] != kind:
        found = "a PDF" if kind == PDF else f"a {FORMAT_NAMES[name]} image"
        raise InvalidDocumentError(
            f"fileType is {_FILE_TYPE_NAMES[file_type]} but the file is {found}"
        )
    return kind


# --- page selection ------------------------------------------------------------------

# Nine digits at most: more is no page number, and Python refuses integers of over 4300.
_RANGE = re.compile(r"(\d{1,9})\s*(?:(-)\s*(\d{0,9}))?")


def parse_page_ranges(spec: str | None, page_count: int, max_pages: int | None = None) -> list[int]:
    """Sorted unique 0-based page indices from a 1-based spec like ``"1-3, 7, 10-"``;
    None or blank selects every page. More than ``max_pages`` pages is refused (413)."""
    if spec is None or not spec.strip():
        indices = list(range(page_count))
    else:
        selected: set[int] = set()
        for part in spec.split(","):
            first, last = _parse_range(part.strip(), spec, page_count)
            selected.update(range(first - 1, last))
        indices = sorted(selected)
    if max_pages is not None and len(indices) > max_pages:
        raise LimitExceededError(
            f"{len(indices)} pages are selected but at most {max_pages} may be parsed "
            f"in one request (HPS_MAX_PAGES); select fewer with 'pages'"
        )
    return indices


def page_window(indices: list[int], start: int = 0, limit: int | None = None) -> list[int]:
    """``limit`` of the selected pages ``indices``, from the ``start``-th one (0-based).

    Why: a renderer's pages are sent as soon as they are rendered and wait in shared
    memory until their reader takes them (6 MB for an A4 page at 144 dpi), so the
    orchestrator asks for a long document a window at a time instead of all at once."""
    return indices[start:] if limit is None else indices[start:start + limit]


def _parse_range(part: str, spec: str, page_count: int) -> tuple[int, int]:
    """``(first, last)`` 1-based and inclusive, checked against the document."""
    match = _RANGE.fullmatch(part)
    if match is None:
        shown = "an empty part" if not part else f"{clip(repr(part))}"
        raise InvalidRequestError(
            f"pages {clip(repr(spec))} has {shown}: use page numbers and ranges like \"1-3,7\""
        )
    first = int(match.group(1))
    if match.group(2) is None:
        last = first
    elif match.group(3):
        last = int(match.group(3))
    else:  # "5-": to the end of the document
        last = max(first, page_count)
    if first == 0 or last == 0:
        raise InvalidRequestError(f"pages {clip(repr(spec))}: pages are numbered from 1, there is no page 0")
    if last < first:
        raise InvalidRequestError(
            f"pages {clip(repr(spec))}: the range {clip(repr(part))} is reversed; write {last}-{first}"
        )
    if last > page_count:
        raise _out_of_range(first if first > page_count else last, page_count)
    return first, last


def _out_of_range(page: int, page_count: int) -> InvalidRequestError:
    """``page`` is 1-based."""
    plural = "page" if page_count == 1 else "pages"
    return InvalidRequestError(
        f"page {page} is out of range: the document has {page_count} {plural}"
    )


# --- documents -----------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class RenderedPage:
    """One page's pixels. ``scale`` maps document units to pixels: pixels per PDF point
    for PDFs (dpi/72, times any downscale), the downscale factor for images (1.0 when
    untouched)."""

    index: int  # 0-based page index in the document
    image: np.ndarray  # uint8 [height, width, 3] RGB, C-contiguous
    width: int
    height: int
    scale: float
    text_layer: PageTextLayer | None = None  # a PDF page's words, when asked for (docparse.text_layer)


class Document(ABC):
    """An open document. Close it (or use ``with``) to free the file's memory."""

    kind: str
    page_count: int

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def render(self, indices: list[int], dpi: int) -> Iterator[RenderedPage]:
        """The pages at ``indices`` (0-based), one at a time as the iterator advances.
        ``dpi`` and the indices are checked now, before any page is rendered."""
        self._check(indices, dpi)
        return (self._render_page(index, dpi) for index in list(indices))

    def render_jpeg(self, indices: list[int], dpi: int, max_pixels: int, quality: int) -> Iterator[RenderedJpeg]:
        """As ``render``, each page as a JPEG of at most ``max_pixels`` (for a VLM that
        reads it whole), rendered at that size where possible."""
        self._check(indices, dpi)
        return (self._render_jpeg(index, dpi, max_pixels, quality) for index in list(indices))

    def _check(self, indices: list[int], dpi: int) -> None:
        if not MIN_DPI <= dpi <= self._settings.documents.max_render_dpi:
            raise InvalidRequestError(
                f"dpi {dpi} is out of range: it must be between {MIN_DPI} and "
                f"{self._settings.documents.max_render_dpi} (HPS_MAX_RENDER_DPI)"
            )
        for index in indices:
            if not 0 <= index < self.page_count:
                raise _out_of_range(index + 1, self.page_count)

    @abstractmethod
    def _render_page(self, index: int, dpi: int) -> RenderedPage: ...

    def _render_jpeg(self, index: int, dpi: int, max_pixels: int, quality: int) -> RenderedJpeg:
        """The rendered page made to fit ``max_pixels`` and encoded (images)."""
        page = self._render_page(index, dpi)
        image = page.image
        fitted = fit_scale(page.width, page.height, 1.0, max_pixels)
        if fitted < 1.0:
            size = (max(1, math.floor(page.width * fitted)), max(1, math.floor(page.height * fitted)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        return RenderedJpeg(encode_jpeg(image, quality), image.shape[1], image.shape[0],
                            page.width, page.height, page.scale)

    def text_layer(self, index: int, scale: float) -> PageTextLayer | None:
        """Page ``index``'s own words at the ``scale`` it was rendered at; None: images have none."""
        return None

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Document:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class _PdfDocument(Document):
    kind = PDF

    def __init__(self, data: bytes, settings: Settings, renderer: RenderPool | None) -> None:
        super().__init__(settings)
        self._file = renderer.open(data) if renderer is not None else PdfFile(data)
        self.page_count = self._file.page_count

    def _render_page(self, index: int, dpi: int) -> RenderedPage:
        image, scale = self._file.render(index, dpi, self._settings.documents.max_page_pixels)
        return _page(index, image, scale)

    def _render_jpeg(self, index: int, dpi: int, max_pixels: int, quality: int) -> RenderedJpeg:
        return self._file.render_jpeg(index, dpi, self._settings.documents.max_page_pixels, max_pixels, quality)

    def text_layer(self, index: int, scale: float) -> PageTextLayer:
        return self._file.text_layer(index, scale)

    def close(self) -> None:
        self._file.close()


class _ImageDocument(Document):
    """Images have no physical size: ``dpi`` does not apply to them."""

    kind = IMAGE

    def __init__(self, data: bytes, settings: Settings) -> None:
        super().__init__(settings)
        try:
            self._file = ImageFile(data)
        except Image.DecompressionBombError:  # Pillow's own guard (2 x Image.MAX_IMAGE_PIXELS)
            raise self._too_large() from None
        self.page_count = self._file.frame_count
        try:
            self._check_size(0)  # refuse a bomb before anyone asks for pixels
        except Exception:
            self._file.close()
            raise

    def _render_page(self, index: int, dpi: int) -> RenderedPage:
        self._check_size(index)
        image, scale = self._file.render(index, self._settings.documents.max_page_pixels)
        return _page(index, image, scale)

    def _check_size(self, index: int) -> None:
        """Refuse a frame by the size it declares, before decoding it."""
        width, height = self._file.frame_size(index)
        if width * height > self._settings.documents.max_image_pixels:
            raise self._too_large(f"{width}x{height} pixels")

    def _too_large(self, size: str = "more pixels than allowed") -> LimitExceededError:
        return LimitExceededError(
            f"the image is too large: it declares {size}, the limit is "
            f"{self._settings.documents.max_image_pixels:,} pixels (HPS_MAX_IMAGE_PIXELS)"
        )

    def close(self) -> None:
        self._file.close()


def _page(index: int, image: np.ndarray, scale: float) -> RenderedPage:
    height, width = image.shape[:2]
    return RenderedPage(index=index, image=image, width=width, height=height, scale=scale)


def open_document(
    data: bytes, file_type: int | None, settings: Settings, renderer: RenderPool | None = None
) -> Document:
    """Open ``data`` as a PDF or an image (see ``resolve_kind``); nothing is rendered yet.
    A PDF's pages render in ``renderer``'s processes, within its limits, when given
    (the server), else in this process (tests, tools)."""
    if resolve_kind(data, file_type) == PDF:
        return _PdfDocument(data, settings, renderer)
    return _ImageDocument(data, settings)
