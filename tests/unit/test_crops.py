"""Region crops: clipping, padding, polygon masks, the 28-pixel smart resize, JPEG URIs."""

import base64
import io
import random

import numpy as np
import pytest
from PIL import Image

from docparse.recognition.crops import crop_region, encode_jpeg_data_uri, fit_pixels, jpeg_base64, resize_for_vlm
from docparse.types import LayoutBox

MIN_PIXELS, MAX_PIXELS = 12_544, 1_605_632  # the settings' defaults


def box(x1, y1, x2, y2, polygon=None) -> LayoutBox:
    return LayoutBox("text", 0.9, (x1, y1, x2, y2), polygon=polygon)


def numbered_page(height=100, width=200) -> np.ndarray:
    """Each pixel holds its column (red) and row (green), so a crop shows where it came from."""
    page = np.zeros((height, width, 3), dtype=np.uint8)
    page[..., 0] = np.arange(width)[np.newaxis, :]
    page[..., 1] = np.arange(height)[:, np.newaxis]
    return page


def test_crop_covers_the_box_rounded_outwards():
    crop = crop_region(numbered_page(), box(10.6, 20.2, 50.4, 30.9))
    assert crop.shape == (11, 41, 3)
    assert (crop[0, 0, 0], crop[0, 0, 1]) == (10, 20)


def test_padding_is_added_and_clipped_to_the_page():
    page = numbered_page()
    assert crop_region(page, box(10, 20, 50, 30), padding=4).shape == (18, 48, 3)
    crop = crop_region(page, box(2, 1, 198, 99), padding=4)
    assert crop.shape == (100, 200, 3)


@pytest.mark.parametrize(
    "coordinate",
    [(50, 50, 50, 50), (250, 10, 300, 20), (-30, -30, -10, -10), (40, 60, 30, 50)],
    ids=["empty", "right of the page", "above and left", "inverted"],
)
def test_degenerate_boxes_give_at_least_one_pixel(coordinate):
    crop = crop_region(numbered_page(), box(*coordinate))
    assert crop.shape[0] >= 1 and crop.shape[1] >= 1


def test_grayscale_pages_are_cropped_too():
    page = np.zeros((40, 40), dtype=np.uint8)
    assert crop_region(page, box(5, 5, 15, 25)).shape == (20, 10)


def test_polygon_paints_the_outside_white_and_keeps_the_page_untouched():
    page = np.zeros((100, 100, 3), dtype=np.uint8)
    triangle = ((10.0, 10.0), (90.0, 10.0), (10.0, 90.0))
    crop = crop_region(page, box(10, 10, 90, 90, polygon=triangle))
    assert crop.shape == (80, 80, 3)
    assert crop[2, 2].tolist() == [0, 0, 0]  # inside, near the right angle
    assert crop[75, 75].tolist() == [255, 255, 255]  # outside, beyond the hypotenuse
    assert page.max() == 0


def test_a_polygon_with_fewer_than_three_points_is_ignored():
    page = np.zeros((50, 50, 3), dtype=np.uint8)
    crop = crop_region(page, box(0, 0, 20, 20, polygon=((0.0, 0.0), (20.0, 20.0))))
    assert crop.max() == 0


def test_fit_pixels_keeps_a_fitting_size_on_the_grid():
    assert fit_pixels(280, 140, MIN_PIXELS, MAX_PIXELS) == (280, 140)
    assert fit_pixels(290, 130, MIN_PIXELS, MAX_PIXELS) == (280, 140)


def test_fit_pixels_enlarges_small_crops_to_the_minimum():
    w, h = fit_pixels(20, 10, MIN_PIXELS, MAX_PIXELS)
    assert w * h >= MIN_PIXELS and w % 28 == 0 and h % 28 == 0
    assert w / h == pytest.approx(2, rel=0.2)


def test_fit_pixels_shrinks_large_crops_to_the_maximum():
    w, h = fit_pixels(4000, 3000, MIN_PIXELS, MAX_PIXELS)
    assert w * h <= MAX_PIXELS and w % 28 == 0 and h % 28 == 0
    assert w / h == pytest.approx(4 / 3, rel=0.05)


def test_fit_pixels_holds_for_any_size():
    rng = random.Random(7)
    sizes = [(1, 1), (1, 100_000), (100_000, 1), (3, 50_000)]
    sizes += [(rng.randint(1, 6000), rng.randint(1, 6000)) for _ in range(2000)]
    for width, height in sizes:
        w, h = fit_pixels(width, height, MIN_PIXELS, MAX_PIXELS)
        assert w >= 28 and h >= 28 and w % 28 == 0 and h % 28 == 0, (width, height)
        assert w * h <= MAX_PIXELS, (width, height)
        if max(width, height) <= 50 * min(width, height):  # not a thin strip
            assert w * h >= MIN_PIXELS, (width, height)


def test_fit_pixels_refuses_impossible_limits():
    with pytest.raises(ValueError, match="min_pixels"):
        fit_pixels(100, 100, 20_000, 10_000)
    with pytest.raises(ValueError, match="max_pixels"):
        fit_pixels(100, 100, 100, 500)


def test_resize_for_vlm_returns_the_fitted_size():
    crop = np.zeros((31, 97, 3), dtype=np.uint8)
    resized = resize_for_vlm(crop, MIN_PIXELS, MAX_PIXELS)
    assert resized.shape[:2][::-1] == fit_pixels(97, 31, MIN_PIXELS, MAX_PIXELS)
    assert resized.dtype == np.uint8


def test_jpeg_data_uri_decodes_to_the_same_picture():
    image = np.full((28, 56, 3), 200, dtype=np.uint8)
    uri = encode_jpeg_data_uri(image)
    assert uri.startswith("data:image/jpeg;base64,")
    decoded = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    assert decoded.format == "JPEG" and decoded.size == (56, 28)


def test_jpeg_is_the_same_file_pillow_writes():
    """The faster encoder must not change what the VLM reads: same bytes as Pillow's
    JPEG at the same quality."""
    rng = np.random.default_rng(7)
    page = rng.integers(0, 256, size=(90, 130, 3), dtype=np.uint8)
    for quality in (90, 95):
        ours = base64.b64decode(jpeg_base64(page, quality))
        buffer = io.BytesIO()
        Image.fromarray(page).save(buffer, format="JPEG", quality=quality)
        assert ours == buffer.getvalue()


@pytest.mark.parametrize("picture", [
    np.full((20, 30), 90, dtype=np.uint8),  # grey
    np.full((20, 30, 4), 90, dtype=np.uint8),  # with alpha
    Image.new("P", (30, 20)),  # Pillow image with a palette
])
def test_jpeg_of_any_picture_is_an_rgb_jpeg(picture):
    decoded = Image.open(io.BytesIO(base64.b64decode(jpeg_base64(picture))))
    assert decoded.format == "JPEG" and decoded.mode == "RGB" and decoded.size == (30, 20)
