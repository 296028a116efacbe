"""Region crops: cut from the page, sized for the VLM, encoded for the request.

Cropping lives here only; assembly uses ``crop_region`` for figure crops too, so a figure
and the picture the VLM reads are cut the same way.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pybase64
from PIL import Image, ImageDraw

from docparse.jpeg import encode_jpeg
from docparse.types import LayoutBox

# Qwen2-VL-style vision encoders (GLM-OCR's included) read 28x28 pixel patches.
PATCH = 28
# JPEG quality of what the VLM reads: high, as the model reads small print.
VLM_JPEG_QUALITY = 95


def crop_region(page: np.ndarray, box: LayoutBox, padding: int = 0) -> np.ndarray:
    """The part of ``page`` under ``box`` plus ``padding`` pixels, clipped to the page and
    at least 1x1. With a polygon, pixels outside it are painted white so that a slanted
    or irregular region does not carry its neighbours' text."""
    height, width = page.shape[:2]
    x1, y1, x2, y2 = box.coordinate
    left = min(max(0, math.floor(x1) - padding), width - 1)
    top = min(max(0, math.floor(y1) - padding), height - 1)
    right = max(left + 1, min(width, math.ceil(x2) + padding))
    bottom = max(top + 1, min(height, math.ceil(y2) + padding))
    crop = page[top:bottom, left:right]
    if box.polygon is None or len(box.polygon) < 3:
        return crop
    mask = Image.new("1", (right - left, bottom - top), 0)
    ImageDraw.Draw(mask).polygon([(x - left, y - top) for x, y in box.polygon], fill=1, outline=1)
    masked = crop.copy()
    masked[~np.asarray(mask, dtype=bool)] = 255
    return masked


def fit_pixels(
    width: int, height: int, min_pixels: int, max_pixels: int, factor: int = PATCH
) -> tuple[int, int]:
    """The Qwen2-VL "smart resize": ``(w, h)`` both multiples of ``factor``, area within
    ``[min_pixels, max_pixels]``, aspect ratio kept as well as the grid allows.

    The cap wins over the floor and over the aspect ratio: a huge crop would overflow
    vLLM's encoder cache, while a too-thin strip only loses some aspect fidelity.
    """
    if max_pixels < factor * factor:
        raise ValueError(f"max_pixels {max_pixels} is below one {factor}x{factor} patch")
    if min_pixels > max_pixels:
        raise ValueError(f"min_pixels {min_pixels} is larger than max_pixels {max_pixels}")
    width, height = max(1, width), max(1, height)
    w = max(factor, round(width / factor) * factor)
    h = max(factor, round(height / factor) * factor)
    if w * h > max_pixels:
        scale = math.sqrt(max_pixels / (width * height))
        w = max(factor, math.floor(width * scale / factor) * factor)
        h = max(factor, math.floor(height * scale / factor) * factor)
    elif w * h < min_pixels:
        scale = math.sqrt(min_pixels / (width * height))
        w = math.ceil(width * scale / factor) * factor
        h = math.ceil(height * scale / factor) * factor
    # Very thin strips: the one-patch floor of the short side can push the area past the
    # cap; take the excess from the long side.
    cells = max_pixels // (factor * factor)
    if (w // factor) * (h // factor) > cells:
        if w >= h:
            w = max(1, cells // (h // factor)) * factor
        else:
            h = max(1, cells // (w // factor)) * factor
    return w, h


def resize_for_vlm(crop: np.ndarray, min_pixels: int, max_pixels: int) -> np.ndarray:
    """``crop`` resized to the size ``fit_pixels`` gives: bicubic, or area averaging when
    it shrinks to less than half (where bicubic would alias).

    OpenCV, not Pillow: resizing was the largest CPU cost of the orchestrator. A 144-dpi
    A4 page capped to HPS_CROP_MAX_PIXELS took 74 ms with Pillow's bicubic and about 5 ms
    with OpenCV's on one core here (BENCHMARKS.md, "crop")."""
    height, width = crop.shape[:2]
    size = fit_pixels(width, height, min_pixels, max_pixels)
    if size == (width, height):
        return crop
    scale = min(size[0] / width, size[1] / height)
    interpolation = cv2.INTER_AREA if scale < 0.5 else cv2.INTER_CUBIC
    return cv2.resize(np.ascontiguousarray(crop), size, interpolation=interpolation)


def jpeg_base64(image: np.ndarray | Image.Image, quality: int = 90) -> str:
    """Base64 of the image as a JPEG: figure crops, layout pictures and VLM inputs.

    ``docparse.jpeg``, not Pillow: the same libjpeg-turbo and the same bytes for small
    pictures, without Pillow's copy into its 4-byte layout, and large ones on several
    cores (a 1.6 MP VLM input: 5.5 ms with Pillow, 3.8 ms on one core, 2.2 ms on two;
    BENCHMARKS.md, "Overhead")."""
    if isinstance(image, Image.Image) and image.mode not in ("RGB", "RGBA", "L"):
        image = image.convert("RGB")
    return pybase64.b64encode(encode_jpeg(np.asarray(image), quality)).decode("ascii")


def encode_jpeg_data_uri(image: np.ndarray, quality: int = VLM_JPEG_QUALITY) -> str:
    """``data:image/jpeg;base64,...``: how an OpenAI chat message carries an image."""
    return "data:image/jpeg;base64," + jpeg_base64(image, quality)
