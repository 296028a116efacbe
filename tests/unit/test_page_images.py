"""Pages that go to the VLM as their encoded picture: an upload that fits the pixel
budget goes as its own bytes, a PDF page is rendered at the VLM's size as a JPEG, and
pixels are decoded only when something asks for them."""

from __future__ import annotations

import asyncio
import hashlib
import io

import numpy as np
import pytest
from PIL import Image

from docparse.documents import open_document
from docparse.errors import InvalidRequestError
from docparse.image_pages import image_pages
from docparse.jpeg import encode_jpeg
from docparse.page_images import EncodedImage, EncodedPage, decode_rgb, passable_image, sized_for_vlm
from docparse.protocol import LayoutParsingRequest
from docparse.recognition import build_recognizer
from docparse.recognition.crops import resize_for_vlm
from docparse.settings import Settings, VlmSettings
from docparse.types import LayoutBox, RecognitionParams, RegionJob, Task
from testkit.documents import multipage_tiff, sample_image, sample_pdf

BUDGET = 1_605_632  # HPS_CROP_MAX_PIXELS' default


def picture(size=(600, 400), mode="RGB", fmt="PNG", **save) -> bytes:
    pixels = np.random.default_rng(1).integers(0, 256, (size[1], size[0], len(mode) if mode != "L" else 1), np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels.squeeze(), mode).save(buffer, format=fmt, **save)
    return buffer.getvalue()


def rotated_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° when shown
    return picture(fmt="JPEG", exif=exif.tobytes())


@pytest.mark.parametrize("data, media", [(picture(), "image/png"), (picture(mode="L"), "image/png"),
                                         (picture(fmt="JPEG"), "image/jpeg")])
def test_an_upright_png_or_jpeg_goes_as_it_is(data, media):
    encoded = passable_image(data, 12_000_000)
    assert encoded == EncodedImage(data, media, 600, 400)
    assert encoded.data_uri().startswith(f"data:{media};base64,")


@pytest.mark.parametrize("data", [
    picture(mode="RGBA"),  # a server would turn transparent pixels black
    rotated_jpeg(),  # shown turned: must be turned first
    multipage_tiff(2),
    picture(fmt="BMP"),
    b"not an image",
])
def test_anything_else_is_decoded_as_before(data):
    assert passable_image(data, 12_000_000) is None


def test_a_picture_larger_than_the_page_limit_is_made_smaller_first():
    assert passable_image(picture((600, 400)), 200_000) is None


def test_opencv_decodes_the_same_pixels_as_pillow():
    data = picture(fmt="PNG")
    encoded = passable_image(data, 12_000_000)
    assert np.array_equal(decode_rgb(encoded), np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))


def test_pixels_are_decoded_only_when_asked_for():
    asked = []
    encoded = EncodedImage(picture(), "image/png", 600, 400)

    def decode():
        asked.append(1)
        return decode_rgb(encoded)

    page = EncodedPage(0, 1200, 800, 1.0, encoded, decode)
    assert not asked
    assert page.image.shape == (800, 1200, 3)  # a picture smaller than the page is scaled to it
    assert page.image is page.image and asked == [1]


def request(**fields) -> LayoutParsingRequest:
    return LayoutParsingRequest(file="x", **fields)


async def collect(data: bytes, pixels_needed: bool, **fields):
    return [page async for _, page in image_pages(data, request(**fields), Settings(), pixels_needed)]


def test_an_image_document_comes_encoded_only_when_no_pixels_are_needed():
    data = picture()
    [encoded] = asyncio.run(collect(data, pixels_needed=False))
    assert encoded.encoded.data is data and (encoded.width, encoded.height) == (600, 400)
    [decoded] = asyncio.run(collect(data, pixels_needed=True))
    assert not hasattr(decoded, "encoded") and np.array_equal(decoded.image, encoded.image)


def test_frames_of_a_tiff_are_decoded_pages_and_the_page_rules_apply():
    pages = asyncio.run(collect(multipage_tiff(3), pixels_needed=False, pages="2-3"))
    assert [page.index for page in pages] == [1, 2] and all(page.image.ndim == 3 for page in pages)
    with pytest.raises(InvalidRequestError, match="out of range"):
        asyncio.run(collect(picture(), pixels_needed=False, pages="2"))
    with pytest.raises(InvalidRequestError, match="dpi 900 is out of range"):
        asyncio.run(collect(picture(), pixels_needed=False, dpi=900))


def test_a_pdf_page_is_rendered_at_the_vlms_size_and_reports_its_size_at_the_dpi():
    settings = Settings()
    with open_document(sample_pdf(1), 0, settings) as document:
        [full] = list(document.render([0], 144))
        [jpeg] = list(document.render_jpeg([0], 144, BUDGET, 95))
    assert (jpeg.page_width, jpeg.page_height, jpeg.page_scale) == (full.width, full.height, full.scale)
    assert jpeg.width * jpeg.height <= BUDGET < full.width * full.height
    with Image.open(io.BytesIO(jpeg.data)) as image:
        assert image.format == "JPEG" and image.size == (jpeg.width, jpeg.height)


async def read_whole_page(sim, page) -> str:
    engine = build_recognizer(Settings(vlm=VlmSettings(url=sim.url, max_retries=0)))
    try:
        job = RegionJob(LayoutBox("text", 1.0, (0, 0, page.width, page.height)), Task.TEXT)
        [result] = await engine.recognize(page, [job], RecognitionParams())
    finally:
        await engine.aclose()
    return result.content


def test_a_page_that_fits_reaches_the_vlm_as_its_own_bytes_without_being_decoded(sim):
    data = picture()
    encoded = passable_image(data, 12_000_000)
    page = EncodedPage(0, 600, 400, 1.0, encoded, lambda: pytest.fail("the page was decoded"))
    text = asyncio.run(read_whole_page(sim, page))
    assert text == f"text 600x400 #{hashlib.sha256(data).hexdigest()[:8]}"  # the stand-in hashes what it got


def test_a_page_over_the_budget_is_resized_from_its_bytes_and_sent_as_a_jpeg(sim):
    data = sample_image()  # 1191x1684: over 1.6 MP
    encoded = passable_image(data, 12_000_000)
    page = EncodedPage(0, encoded.width, encoded.height, 1.0, encoded, lambda: pytest.fail("the page was decoded"))
    asyncio.run(read_whole_page(sim, page))
    [call] = sim.calls()
    assert call["width"] * call["height"] <= BUDGET and call["width"] % 28 == 0
    # The same picture as resizing the decoded page gives (BGR throughout, no RGB round trip).
    sized = sized_for_vlm(encoded, 12_544, BUDGET, 95)
    expected = encode_jpeg(resize_for_vlm(decode_rgb(encoded), 12_544, BUDGET), 95)
    assert (sized.width, sized.height) == (call["width"], call["height"])
    assert np.abs(jpeg_pixels(sized.data) - jpeg_pixels(expected)).mean() < 1


def jpeg_pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)
