"""Pages known by their encoded bytes, decoded only if something needs their pixels.

Feeding a VLM a whole page (layout detection off) needs no pixels in this service when
the page's encoded picture is already one the VLM can be given: an uploaded PNG or JPEG
within the VLM's pixel budget goes as its own bytes (no decode, no re-encode), and a PDF
page is rendered straight at the VLM's size and JPEG-encoded where it is rendered
(``pdf_render``). Decoding a 1224x1584 PNG takes 22 ms with OpenCV and 36 ms with Pillow
on this machine, against well under 1 ms for what is left per page (BENCHMARKS.md,
"Feeding the VLM").

An ``EncodedPage`` behaves like a rendered page: ``image`` decodes on first use, so a
step that does need pixels (layout detection, a drawn picture, a CPU OCR engine) gets
exactly what it got before.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import cached_property
from typing import Callable, Protocol, Union

import cv2
import numpy as np
import pybase64
from PIL import Image

from docparse.jpeg import encode_jpeg
from docparse.recognition.crops import resize_for_vlm
from docparse.responses import PageTextLayer
from docparse.types import LayoutBox

# What a VLM server takes as it is: formats every image loader reads, in modes that
# need no conversion. Alpha is left out on purpose: servers drop it (transparent
# pixels turn black), where our decoding paints it on white.
PASSABLE_MODES = {"PNG": {"RGB", "L"}, "JPEG": {"RGB", "L"}}
MEDIA_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg"}
EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class EncodedImage:
    """A picture as a file (PNG or JPEG bytes) and the size it declares."""

    data: bytes
    media_type: str
    width: int
    height: int

    def data_uri(self) -> str:
        """``data:<type>;base64,...``: how an OpenAI chat message carries an image."""
        return f"data:{self.media_type};base64," + pybase64.b64encode(self.data).decode("ascii")

    def fits(self, min_pixels: int, max_pixels: int) -> bool:
        """Whether the VLM takes it at its own size (within the crop pixel limits)."""
        return min_pixels <= self.width * self.height <= max_pixels


def passable_image(data: bytes, max_pixels: int) -> EncodedImage | None:
    """``data`` as an ``EncodedImage`` when it can go to a VLM as it is: one frame of PNG
    or JPEG, RGB or grey, upright (no EXIF rotation), at most ``max_pixels``
    (HPS_MAX_PAGE_PIXELS: larger pages are made smaller first). Reads the header only;
    ``None`` for anything else (it is decoded as before)."""
    try:
        with Image.open(io.BytesIO(data), formats=tuple(PASSABLE_MODES)) as image:
            if image.mode not in PASSABLE_MODES[image.format] or getattr(image, "n_frames", 1) != 1:
                return None
            if image.format == "JPEG" and image.getexif().get(EXIF_ORIENTATION, 1) != 1:
                return None
            if image.format == "PNG" and "transparency" in image.info:
                return None
            width, height = image.size
            media_type = MEDIA_TYPES[image.format]
    except Exception:  # noqa: BLE001 - anything unusual takes the decoding path, which names the problem
        return None
    if width * height > max_pixels or not width or not height:
        return None
    return EncodedImage(data, media_type, width, height)


def decode_rgb(encoded: EncodedImage) -> np.ndarray:
    """The pixels of a passable image, RGB uint8 [H, W, 3]: OpenCV's decoder (1.6x
    Pillow's for PNG here); EXIF is ignored, as ``passable_image`` let only upright
    pictures through."""
    raw = np.frombuffer(encoded.data, dtype=np.uint8)
    bgr = cv2.imdecode(raw, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if bgr is None or bgr.shape[:2] != (encoded.height, encoded.width):
        raise ValueError("the image could not be decoded: it is damaged")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def sized_for_vlm(encoded: EncodedImage, min_pixels: int, max_pixels: int, quality: int) -> EncodedImage:
    """A picture that does not fit the VLM's pixel limits, resized to them as a JPEG:
    decoded, resized and encoded in OpenCV's own channel order (no conversion to RGB
    and back, 2 ms of a page here)."""
    bgr = cv2.imdecode(np.frombuffer(encoded.data, dtype=np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if bgr is None:
        raise ValueError("the image could not be decoded: it is damaged")
    sized = resize_for_vlm(bgr, min_pixels, max_pixels)
    return EncodedImage(encode_jpeg(sized, quality, bgr=True), "image/jpeg", sized.shape[1], sized.shape[0])


class EncodedPage:
    """A page whose picture is ``encoded``; ``image`` (RGB at ``width`` x ``height``)
    is decoded by ``decode`` the first time it is asked for."""

    def __init__(
        self,
        index: int,
        width: int,
        height: int,
        scale: float,
        encoded: EncodedImage,
        decode: Callable[[], np.ndarray],
        text_layer: PageTextLayer | None = None,
    ) -> None:
        self.index, self.width, self.height, self.scale = index, width, height, scale
        self.encoded = encoded
        self.text_layer = text_layer
        self._decode = decode

    @cached_property
    def image(self) -> np.ndarray:
        image = self._decode()
        if image.shape[:2] != (self.height, self.width):  # rendered smaller for the VLM
            image = cv2.resize(image, (self.width, self.height), interpolation=cv2.INTER_CUBIC)
        return image


#: What a recognizer is given: the page's pixels, or a page (``image`` decoded when
#: read, and maybe ``encoded``).
PageSource = Union[np.ndarray, "PagePixels"]


class PagePixels(Protocol):
    width: int
    height: int

    @property
    def image(self) -> np.ndarray: ...


def pixels_of(page: PageSource) -> np.ndarray:
    """The page's RGB pixels (decoded now if it came encoded)."""
    return page if isinstance(page, np.ndarray) else page.image


def whole_page_image(page: PageSource, box: LayoutBox) -> EncodedImage | None:
    """The page's encoded picture when ``box`` covers the whole page and the page came
    encoded; ``None`` otherwise (the region is cut from the pixels)."""
    encoded = getattr(page, "encoded", None)
    if encoded is None or box.polygon is not None:
        return None
    x1, y1, x2, y2 = box.coordinate
    return encoded if x1 <= 0 and y1 <= 0 and x2 >= page.width and y2 >= page.height else None
