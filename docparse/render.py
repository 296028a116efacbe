"""Pixels: PDF pages through pdfium and image frames through Pillow, as RGB arrays.

What a document is, which pages are wanted and which limits apply is decided in
``docparse.documents``; this module only opens files and turns pages into pixels, and
turns the libraries' failures into errors that name the problem.

pdfium is not thread-safe, even across different documents: every pypdfium2 call in
this process (open, page count, render, close) must hold ``PDFIUM_LOCK``.
"""

from __future__ import annotations

import io
import math
import struct
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from PIL import Image, ImageOps, UnidentifiedImageError

from docparse import text_layer
from docparse.errors import InvalidDocumentError
from docparse.jpeg import encode_jpeg
from docparse.responses import PageTextLayer

# Re-entrant so that a document closed by the garbage collector while its thread
# already holds the lock does not deadlock.
PDFIUM_LOCK = threading.RLock()

# Pillow plugins we let parse untrusted bytes; everything else is refused unopened.
IMAGE_FORMATS = ("PNG", "JPEG", "TIFF", "BMP", "WEBP")

# A JPEG's extra pictures (MPO previews from cameras) are not pages.
_SINGLE_FRAME_FORMATS = ("JPEG", "MPO")

# What Pillow raises on damaged or truncated image data. Its plugins also let errors of
# their own parsing escape: a TIFF without its width tag is a TypeError ("Missing
# dimensions"), a short table an IndexError or struct.error (found by `make fuzz`).
_IMAGE_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, TypeError, KeyError, IndexError, struct.error,
                        ZeroDivisionError)


def fit_scale(width: float, height: float, scale: float, max_pixels: int) -> float:
    """The largest scale <= ``scale`` at which ``width x height`` rounded up to whole
    pixels (as pdfium does) is at most ``max_pixels``."""

    def pixels(s: float) -> int:
        return math.ceil(width * s) * math.ceil(height * s)

    if pixels(scale) <= max_pixels:
        return scale
    fitted = min(scale, math.sqrt(max_pixels / (width * height)))
    while pixels(fitted) > max_pixels:  # rounding up can overshoot by a row or column
        fitted *= 0.999
    return fitted


def new_image(shape: tuple[int, ...]) -> np.ndarray:
    return np.empty(shape, dtype=np.uint8)


@dataclass(frozen=True)
class RenderedJpeg:
    """A page rendered for a VLM: JPEG ``data`` of ``width`` x ``height`` pixels (at most
    the VLM's budget), and the size and scale the page has at the requested dpi (what
    the result reports, as if it had been rendered at that size)."""

    data: bytes
    width: int
    height: int
    page_width: int
    page_height: int
    page_scale: float


class PdfFile:
    """An open PDF, from its bytes or its file. Holds ``PDFIUM_LOCK`` for every pdfium
    call."""

    def __init__(self, source: bytes | Path) -> None:
        with PDFIUM_LOCK:
            self._pdf: pdfium.PdfDocument | None = open_pdf(source)
            self._source = source  # pdfium reads the document from these bytes while it is open
            self.page_count: int = len(self._pdf)

    @contextmanager
    def _loaded(self, index: int) -> Iterator[tuple[pdfium.PdfPage, float, float]]:
        """Page ``index`` (0-based) and its size in points, holding ``PDFIUM_LOCK``; a page
        that cannot be read, or has no size, is refused naming it."""
        with PDFIUM_LOCK:
            if self._pdf is None:
                raise ValueError("the PDF is closed")
            try:
                page = self._pdf[index]
            except pdfium.PdfiumError:
                raise InvalidDocumentError(
                    f"page {index + 1} of the PDF could not be read: the page is damaged"
                ) from None
            try:
                width, height = page.get_size()
                if width <= 0 or height <= 0:
                    raise InvalidDocumentError(f"page {index + 1} of the PDF has no size")
                yield page, width, height
            finally:
                page.close()

    def render(
        self, index: int, dpi: int, max_pixels: int, into: Callable[[tuple[int, ...]], np.ndarray] = new_image
    ) -> tuple[np.ndarray, float]:
        """Page ``index`` (0-based) as RGB uint8 ``[H, W, 3]`` at ``dpi``, made smaller if
        needed to fit ``max_pixels``, in the array ``into`` gives for its shape (a new
        one, or shared memory); also returns the pixels per PDF point used."""
        with self._loaded(index) as (page, width, height):
            scale = fit_scale(width, height, dpi / 72, max_pixels)
            bitmap = page.render(scale=scale, rev_byteorder=True)  # RGB, white background
            try:
                # A copy: the bitmap's memory belongs to pdfium and is freed on close.
                pixels = bitmap.to_numpy()
                image = into(pixels.shape)
                image[...] = pixels
            finally:
                bitmap.close()
        return image, scale

    def render_jpeg(self, index: int, dpi: int, max_page_pixels: int, max_pixels: int, quality: int) -> RenderedJpeg:
        """Page ``index`` rendered straight at the size a VLM takes (at most ``max_pixels``:
        no render-then-resize) and JPEG-encoded here, where it is rendered (no pixels
        sent on). pdfium's own BGR bitmap goes to the encoder as it is: no copy, no
        channel swap (together 5 of 19 ms a page here, when this went through ``render``)."""
        with self._loaded(index) as (page, width, height):
            page_scale = fit_scale(width, height, dpi / 72, max_page_pixels)
            bitmap = page.render(scale=fit_scale(width, height, page_scale, max_pixels))  # BGR, white background
            try:
                pixels = bitmap.to_numpy()
                jpeg = encode_jpeg(pixels, quality, bgr=True)
                shape = pixels.shape
            finally:
                bitmap.close()
        return RenderedJpeg(jpeg, shape[1], shape[0], math.ceil(width * page_scale), math.ceil(height * page_scale),
                            page_scale)

    def text_layer(self, index: int, scale: float) -> PageTextLayer:
        """Page ``index``'s words in the pixels of its rendering at ``scale``."""
        with PDFIUM_LOCK:
            if self._pdf is None:
                raise ValueError("the PDF is closed")
            page = self._pdf[index]
            try:
                text_page = page.get_textpage()
                try:
                    return text_layer.extract(page, text_page, scale)
                finally:
                    text_page.close()
            finally:
                page.close()

    def close(self) -> None:
        with PDFIUM_LOCK:
            if self._pdf is not None:
                self._pdf.close()
                self._pdf = None

    def __del__(self) -> None:
        # pypdfium2 would otherwise close a forgotten document from the garbage
        # collector without the lock, possibly while another thread is rendering.
        if getattr(self, "_pdf", None) is not None:
            self.close()


def open_pdf(source: bytes | Path) -> pdfium.PdfDocument:
    """The PDF in ``source`` (its bytes, or its file) opened by pdfium; the caller holds
    ``PDFIUM_LOCK`` and keeps the bytes alive while the document is open. Loaded
    through pdfium's own call, because pypdfium2 reports a PDF without pages as a
    failure to load, with whatever error pdfium reported last (a damaged file before
    it, say)."""
    if isinstance(source, Path):
        raw = pdfium_c.FPDF_LoadDocument(str(source).encode(), None)
    else:
        raw = pdfium_c.FPDF_LoadMemDocument64(source, len(source), None)
    if not raw:
        code = pdfium_c.FPDF_GetLastError()
        if code in (pdfium_c.FPDF_ERR_PASSWORD, pdfium_c.FPDF_ERR_SECURITY):
            raise InvalidDocumentError("the PDF is encrypted (password protected); send a copy without a password")
        raise InvalidDocumentError("the PDF could not be opened: it is damaged or not a PDF")
    if pdfium_c.FPDF_GetPageCount(raw) < 1:
        pdfium_c.FPDF_CloseDocument(raw)
        raise InvalidDocumentError("the PDF has no pages")
    return pdfium.PdfDocument(raw)


class ImageFile:
    """An open image file; each frame (TIFF page, animation frame) is one page.

    Frames are decoded only in ``render``, so their declared size can be checked first.
    A lock per file: seeking to a frame and decoding it must not interleave.
    """

    def __init__(self, data: bytes) -> None:
        try:
            self._image = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
            single = self._image.format in _SINGLE_FRAME_FORMATS
            self.frame_count: int = 1 if single else getattr(self._image, "n_frames", 1)
        except UnidentifiedImageError:
            raise InvalidDocumentError(
                "the image could not be opened: it is damaged or not a supported image"
            ) from None
        except _IMAGE_DECODE_ERRORS:
            raise _image_decode_error() from None
        self.format: str = self._image.format or "image"
        self._lock = threading.Lock()

    def frame_size(self, index: int) -> tuple[int, int]:
        """Width and height that frame ``index`` declares, read without decoding it."""
        with self._lock:
            self._seek(index)
            return self._image.size

    def render(self, index: int, max_pixels: int) -> tuple[np.ndarray, float]:
        """Frame ``index`` as RGB uint8 ``[H, W, 3]``, upright (EXIF orientation applied),
        made smaller if needed to fit ``max_pixels``; also returns the factor applied."""
        with self._lock:
            self._seek(index)
            try:
                frame = ImageOps.exif_transpose(self._image)
                rgb = to_rgb(frame)
            except _IMAGE_DECODE_ERRORS:
                raise _image_decode_error() from None
        scale = fit_scale(rgb.width, rgb.height, 1.0, max_pixels)
        if scale < 1.0:
            size = (max(1, math.floor(rgb.width * scale)), max(1, math.floor(rgb.height * scale)))
            rgb = rgb.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
        return np.array(rgb, dtype=np.uint8, order="C"), scale

    def close(self) -> None:
        self._image.close()

    def _seek(self, index: int) -> None:
        try:
            self._image.seek(index)
        except _IMAGE_DECODE_ERRORS:
            raise _image_decode_error() from None


def _image_decode_error() -> InvalidDocumentError:
    return InvalidDocumentError("the image could not be decoded: it is damaged or truncated")


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode as 8-bit RGB: transparency composited on white (how a page looks
    on paper), 16-bit grey scaled down rather than clipped, palette/CMYK/grey converted."""
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        grey = (np.asarray(image).astype(np.uint16) >> 8).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    has_alpha = "A" in image.getbands() or "a" in image.getbands() or "transparency" in image.info
    if has_alpha:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")
