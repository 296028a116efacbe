"""Whole pages to the VLM with as little work as possible (issue #19), end to end through
gunicorn → tritonserver → the VLM stand-in: an upload that fits the pixel budget reaches
the VLM as its own bytes, a PDF page as a JPEG rendered at the VLM's size, and the
answers say the same as before."""

from __future__ import annotations

import base64
import hashlib
import io

import numpy as np
import pytest
from PIL import Image

from testkit.documents import sample_image, sample_pdf
from tests.e2e.test_gateway import body_for

pytestmark = pytest.mark.triton

BUDGET = 1_605_632  # HPS_CROP_MAX_PIXELS' default


def picture(size=(700, 500), mode="RGB") -> bytes:
    pixels = np.random.default_rng(7).integers(0, 256, (size[1], size[0], len(mode)), np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode).save(buffer, format="PNG")
    return buffer.getvalue()


def parse(http, data: bytes, **options) -> dict:
    answer = http.post("/layout-parsing", json=body_for(data, useLayoutDetection=False, **options))
    assert answer.status_code == 200, answer.text
    return answer.json()["result"]


def first_block(result: dict) -> str:
    return result["layoutParsingResults"][0]["prunedResult"]["parsing_res_list"][0]["block_content"]


def test_an_upload_that_fits_reaches_the_vlm_as_it_was_sent(http, vlm):
    data = picture()
    result = parse(http, data)
    # The stand-in answers with the size and hash of the picture it got: the upload itself.
    assert first_block(result) == f"text 700x500 #{hashlib.sha256(data).hexdigest()[:8]}"
    assert result["dataInfo"]["pages"] == [{"width": 700, "height": 500}]


def test_a_picture_that_cannot_go_as_it_is_is_decoded_and_read(http, vlm):
    for data in (picture(mode="RGBA"), sample_image()):  # transparency; over the pixel budget
        result = parse(http, data)
        [call] = vlm.calls()
        assert first_block(result).startswith(f"text {call['width']}x{call['height']} #")
        assert call["width"] * call["height"] <= BUDGET
        vlm.reset()


def test_a_pdf_page_reaches_the_vlm_at_its_size_and_keeps_its_size_at_the_dpi(http, vlm):
    result = parse(http, sample_pdf(2))
    calls = vlm.calls()
    assert len(calls) == 2 and all(c["width"] * c["height"] <= BUDGET for c in calls)
    # The page sizes the answer gives are the pages' at 144 dpi, as with layout detection on.
    with_layout = http.post("/layout-parsing", json=body_for(sample_pdf(2))).json()["result"]
    assert result["dataInfo"]["pages"] == with_layout["dataInfo"]["pages"] == [{"width": 1191, "height": 1684}] * 2
    page = result["layoutParsingResults"][0]["prunedResult"]
    assert (page["width"], page["height"]) == (1191, 1684)
    assert page["parsing_res_list"][0]["block_bbox"] == [0, 0, 1191, 1684]


def test_pictures_asked_for_are_drawn_from_the_decoded_page(http, vlm):
    result = parse(http, picture(), visualize=True)
    page = result["layoutParsingResults"][0]
    with Image.open(io.BytesIO(base64.b64decode(page["inputImage"]))) as image:
        assert image.size == (700, 500)
    assert page["outputImages"]["layout_det_res"]
