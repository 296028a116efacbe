"""JPEG in parallel strips: the same file libjpeg writes with a restart interval, the same
pixels as the file encoded whole."""

import io
import math

import cv2
import numpy as np
import pytest
from PIL import Image

from docparse import jpeg


def scanned_page(height: int, width: int) -> np.ndarray:
    """Text-like content: white with dark strokes and some noise, so every strip has
    real entropy-coded data."""
    rng = np.random.default_rng(height * 7919 + width)
    page = np.full((height, width, 3), 250, dtype=np.uint8)
    for _ in range(height // 6):
        y, x = int(rng.integers(0, height)), int(rng.integers(0, width))
        page[y : y + 3, x : x + int(rng.integers(5, 200))] = rng.integers(0, 80, size=3)
    return np.clip(page.astype(np.int16) + rng.integers(-6, 7, size=page.shape), 0, 255).astype(np.uint8)


def decoded(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def whole(pixels: np.ndarray, quality: int, restart_interval: int = 0) -> bytes:
    """libjpeg's own file, in one piece (optionally with a restart interval)."""
    params = [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_RST_INTERVAL, restart_interval]
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR), params)
    assert ok
    return encoded.tobytes()


@pytest.fixture
def two_strips(monkeypatch):
    monkeypatch.setattr(jpeg, "STRIPS", 2)


@pytest.mark.parametrize("strips", [2, 3, 4])
@pytest.mark.parametrize("shape", [(1484, 1064), (1003, 777), (530, 2001)])
def test_strips_give_libjpegs_own_file_with_that_restart_interval(monkeypatch, strips, shape):
    monkeypatch.setattr(jpeg, "STRIPS", strips)
    page = scanned_page(*shape)
    height, width = shape
    strip_height = math.ceil(math.ceil(height / 16) / strips) * 16
    ours = jpeg.encode_jpeg(page, 95)
    assert ours == whole(page, 95, math.ceil(width / 16) * strip_height // 16)
    assert b"\xff\xdd" in ours  # really joined from strips, not encoded whole


def test_strips_decode_to_the_pixels_of_the_whole_file(two_strips):
    page = scanned_page(1484, 1064)
    ours = jpeg.encode_jpeg(page, 95)
    assert np.array_equal(decoded(ours), decoded(whole(page, 95)))
    assert decoded(ours).shape == page.shape


def test_small_pictures_are_encoded_whole(two_strips):
    page = scanned_page(300, 400)
    assert jpeg.encode_jpeg(page, 90) == whole(page, 90)


def test_a_strip_no_helper_took_is_encoded_by_the_caller(two_strips, monkeypatch):
    """Every core busy: the helper never starts the strip, and the result is the same."""

    class BusyPool:
        def submit(self, fn, *args):
            from concurrent.futures import Future

            return Future()  # pending for ever; cancel() succeeds

    page = scanned_page(1200, 1000)
    expected = jpeg.encode_jpeg(page, 95)
    monkeypatch.setattr(jpeg, "_helpers", BusyPool())
    assert jpeg.encode_jpeg(page, 95) == expected


def test_grey_and_alpha_pictures_become_colour_jpegs(two_strips):
    grey = scanned_page(800, 700)[..., 0]
    rgba = np.dstack([scanned_page(800, 700), np.full((800, 700), 7, dtype=np.uint8)])
    for picture in (grey, rgba):
        image = Image.open(io.BytesIO(jpeg.encode_jpeg(picture, 95)))
        assert image.mode == "RGB" and image.size == (700, 800)


def test_join_strips_refuses_what_is_not_a_jpeg():
    with pytest.raises(ValueError, match="not a whole JPEG"):
        jpeg.join_strips([b"\x89PNG....", b"\xff\xd8\xff\xd9"], 10, 1)
