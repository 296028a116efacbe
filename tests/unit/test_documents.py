"""Documents as a user sees them: which files are accepted, which pages come out, at which
size, and what the error says when something is refused."""

from __future__ import annotations

import io
import struct
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from docparse.documents import (
    Document,
    open_document,
    page_window,
    parse_page_ranges,
    resolve_kind,
    sniff_kind,
)
from docparse.errors import InvalidDocumentError, InvalidRequestError, LimitExceededError
from docparse.protocol import RenderOptions, parse_request
from docparse.settings import DocumentSettings, Settings
from testkit.documents import (
    blank_pdf,
    corrupt_pdf,
    encrypted_pdf,
    pageless_pdf,
    multipage_tiff,
    sample_image,
    sample_pdf,
)

A4_144DPI = (1684, 1191)  # rows, columns
A4_72DPI = (842, 596)
IMAGE_FORMATS = ["PNG", "JPEG", "TIFF", "BMP", "WEBP"]


def settings(**overrides) -> Settings:
    return Settings(documents=DocumentSettings(**overrides))


def render_all(document: Document, dpi: int = 144) -> list:
    return list(document.render(list(range(document.page_count)), dpi))


def image_bytes(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def only_page(data: bytes, **overrides):
    with open_document(data, None, settings(**overrides)) as document:
        (page,) = render_all(document)
    return page


# --- what kind of file -----------------------------------------------------------------


@pytest.mark.parametrize("fmt", IMAGE_FORMATS)
def test_every_supported_image_format_is_sniffed_as_an_image(fmt):
    assert sniff_kind(sample_image(fmt)) == "image"


def test_big_endian_tiff_is_an_image():
    data = image_bytes(Image.new("I;16B", (8, 8)), "TIFF")
    assert data.startswith(b"MM\x00*")
    assert sniff_kind(data) == "image"


def test_pdf_is_sniffed_even_after_leading_junk():
    assert sniff_kind(sample_pdf(1)) == "pdf"
    assert sniff_kind(b"\x00" * 500 + sample_pdf(1)) == "pdf"
    assert sniff_kind(b"\x00" * 2000 + sample_pdf(1)) is None


@pytest.mark.parametrize("data", [b"hello", b"BM but not a bitmap", b"RIFF....WAVEfmt "])
def test_other_files_are_refused_naming_the_supported_types(data):
    assert sniff_kind(data) is None
    with pytest.raises(InvalidDocumentError) as error:
        open_document(data, None, settings())
    assert "not a PDF or a supported image" in error.value.message
    assert all(name in error.value.message for name in ("PDF", "PNG", "JPEG", "TIFF", "BMP", "WebP"))
    assert error.value.status == 422


def test_empty_file_is_named():
    with pytest.raises(InvalidDocumentError, match="the file is empty"):
        open_document(b"", None, settings())


def test_file_type_confirms_the_bytes():
    assert resolve_kind(sample_pdf(1), 0) == "pdf"
    assert resolve_kind(sample_image("PNG"), 1) == "image"
    assert resolve_kind(sample_image("JPEG"), None) == "image"


@pytest.mark.parametrize(
    ("data", "file_type", "message"),
    [
        (sample_image("PNG"), 0, "fileType is 0 (PDF) but the file is a PNG image"),
        (sample_image("WEBP"), 0, "fileType is 0 (PDF) but the file is a WebP image"),
        (sample_pdf(1), 1, "fileType is 1 (image) but the file is a PDF"),
        (b"hello", 0, "fileType is 0 (PDF) but the file is not a PDF or a supported image"),
    ],
)
def test_file_type_contradicting_the_bytes_names_both(data, file_type, message):
    with pytest.raises(InvalidDocumentError) as error:
        resolve_kind(data, file_type)
    assert message in error.value.message


def test_unknown_file_type_is_a_bad_request():
    with pytest.raises(InvalidRequestError, match="fileType must be 0 .* or 1"):
        resolve_kind(sample_pdf(1), 2)


# --- page selection --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "page_count", "expected"),
    [
        (None, 3, [0, 1, 2]),
        ("", 2, [0, 1]),
        ("  ", 2, [0, 1]),
        ("1-3,7", 10, [0, 1, 2, 6]),
        (" 7 , 1 - 2 ,2", 10, [0, 1, 6]),
        ("4-", 6, [3, 4, 5]),
        ("6-", 6, [5]),
        ("2-2", 3, [1]),
    ],
)
def test_page_ranges_select_sorted_unique_indices(spec, page_count, expected):
    assert parse_page_ranges(spec, page_count) == expected


@pytest.mark.parametrize(
    ("spec", "page_count", "message"),
    [
        ("1-x", 5, "'1-x'"),
        ("1;2", 5, "'1;2'"),
        ("1,,2", 5, "an empty part"),
        ("-2", 5, "'-2'"),
        ("0", 5, "no page 0"),
        ("0-2", 5, "no page 0"),
        ("3-1", 5, "the range '3-1' is reversed; write 1-3"),
        ("5", 3, "page 5 is out of range: the document has 3 pages"),
        ("2-9", 3, "page 9 is out of range: the document has 3 pages"),
        ("7-", 3, "page 7 is out of range: the document has 3 pages"),
        ("2", 1, "page 2 is out of range: the document has 1 page"),
        # Hostile: no page number has 5000 digits (Python refuses to read them: a 500
        # before), and the message echoes only the start of what was sent.
        ("1" * 5000, 5, "has '1111111111"),
        ("1-" + "9" * 5000, 5, "use page numbers and ranges"),
    ],
)
def test_bad_page_ranges_name_the_problem(spec, page_count, message):
    with pytest.raises(InvalidRequestError) as error:
        parse_page_ranges(spec, page_count)
    assert message in error.value.message
    assert error.value.status == 422 and len(error.value.message) < 200


def test_more_pages_than_allowed_is_refused_with_413():
    assert parse_page_ranges("1-4", 10, max_pages=4) == [0, 1, 2, 3]
    with pytest.raises(LimitExceededError) as error:
        parse_page_ranges("1-5", 10, max_pages=4)
    assert error.value.status == 413
    assert "5 pages" in error.value.message and "at most 4" in error.value.message
    assert "HPS_MAX_PAGES" in error.value.message
    with pytest.raises(LimitExceededError):
        parse_page_ranges(None, 10, max_pages=4)


# --- PDFs ------------------------------------------------------------------------------


def test_three_page_pdf_renders_three_a4_pages_at_144_dpi():
    with open_document(sample_pdf(3), None, settings()) as document:
        assert (document.kind, document.page_count) == ("pdf", 3)
        pages = render_all(document)
    assert [page.index for page in pages] == [0, 1, 2]
    for page in pages:
        assert page.image.shape == (*A4_144DPI, 3)
        assert page.image.dtype == np.uint8 and page.image.flags.c_contiguous
        assert (page.height, page.width) == A4_144DPI
        assert page.scale == 2.0
    # Same layout, different page numbers.
    assert not np.array_equal(pages[0].image, pages[1].image)
    assert np.array_equal(pages[0].image[: A4_144DPI[0] // 2], pages[1].image[: A4_144DPI[0] // 2])


def test_pages_have_content_drawn_in_black_and_colour():
    page = only_page(sample_pdf(1))
    assert (page.image < 64).all(axis=2).sum() > 10_000  # text and table lines
    red, green, blue = (page.image[..., c].astype(int) for c in range(3))
    assert ((red - blue) > 100).sum() > 1_000  # the figure's orange and red


def test_only_the_selected_pages_are_rendered_in_the_order_asked():
    with open_document(sample_pdf(3), 0, settings()) as document:
        everything = render_all(document)
        selected = list(document.render(parse_page_ranges("3,1", document.page_count), 144))
    assert [page.index for page in selected] == [0, 2]
    assert np.array_equal(selected[1].image, everything[2].image)


def test_dpi_sets_the_page_size():
    with open_document(sample_pdf(1), None, settings()) as document:
        (page,) = document.render([0], 72)
    assert page.image.shape[:2] == A4_72DPI and page.scale == 1.0


@pytest.mark.parametrize("dpi", [35, 101])
def test_dpi_outside_the_allowed_range_is_refused_before_rendering(dpi):
    with open_document(sample_pdf(1), None, settings(render_dpi=72, max_render_dpi=100)) as document:
        with pytest.raises(InvalidRequestError) as error:
            document.render([0], dpi)
        assert f"dpi {dpi}" in error.value.message and "HPS_MAX_RENDER_DPI" in error.value.message
        assert "between 36 and 100" in error.value.message
        (page,) = document.render([0], 100)
    assert page.image.shape[:2] == (1170, 827)


def test_render_refuses_a_page_the_document_does_not_have():
    with open_document(sample_pdf(2), None, settings()) as document:
        with pytest.raises(InvalidRequestError, match="page 3 is out of range: the document has 2 pages"):
            document.render([0, 2], 144)


def test_pages_above_max_page_pixels_are_rendered_smaller_with_the_same_aspect():
    page = only_page(sample_pdf(1), max_page_pixels=500_000)
    assert page.width * page.height <= 500_000
    assert page.width * page.height > 490_000  # as large as fits
    assert page.width / page.height == pytest.approx(1191 / 1684, rel=0.01)
    assert page.scale < 2.0
    assert page.scale == pytest.approx(page.width / 595.2756, rel=0.01)  # pixels per point


def test_blank_pdf_renders_white_pages():
    with open_document(blank_pdf(2), None, settings()) as document:
        pages = render_all(document)
    assert len(pages) == 2 and all((page.image == 255).all() for page in pages)


def test_encrypted_pdf_is_named():
    with pytest.raises(InvalidDocumentError) as error:
        open_document(encrypted_pdf(), None, settings())
    assert "the PDF is encrypted (password protected)" in error.value.message


@pytest.mark.parametrize(
    "data", [corrupt_pdf(), sample_pdf(1)[:4000]], ids=["garbage", "truncated"]
)
def test_damaged_pdf_is_named(data):
    with pytest.raises(InvalidDocumentError) as error:
        open_document(data, None, settings())
    assert "the PDF could not be opened: it is damaged or not a PDF" in error.value.message


def test_pdf_without_pages_is_named_even_after_a_damaged_one():
    """pdfium's last error is left from the call before: a pageless PDF opened after a
    damaged one was once also called damaged."""
    for data, message in [(corrupt_pdf(), "damaged or not a PDF"), (pageless_pdf(), "the PDF has no pages")] * 2:
        with pytest.raises(InvalidDocumentError) as error:
            open_document(data, None, settings())
        assert message in error.value.message


# --- images ----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", IMAGE_FORMATS)
def test_each_image_format_gives_one_rgb_page(fmt):
    with open_document(sample_image(fmt), 1, settings()) as document:
        assert (document.kind, document.page_count) == ("image", 1)
        (page,) = render_all(document)
    assert page.image.shape == (*A4_144DPI, 3) and page.image.dtype == np.uint8
    assert page.image.flags.c_contiguous
    assert page.scale == 1.0
    reference = only_page(sample_pdf(1))
    difference = np.abs(page.image.astype(int) - reference.image).mean()
    assert difference <= (0 if fmt in ("PNG", "TIFF", "BMP") else 4)  # JPEG and WebP are lossy


def test_multipage_tiff_gives_one_page_per_frame():
    with open_document(multipage_tiff(3), None, settings()) as document:
        assert (document.kind, document.page_count) == ("image", 3)
        pages = render_all(document)
        (third,) = document.render([2], 144)
    assert [page.index for page in pages] == [0, 1, 2]
    assert all(page.image.shape == (*A4_144DPI, 3) for page in pages)
    assert not np.array_equal(pages[0].image, pages[2].image)  # page numbers differ
    assert np.array_equal(third.image, pages[2].image)


@pytest.mark.parametrize("fmt", ["WEBP", "PNG"])
def test_animation_frames_are_pages(fmt):
    frames = [Image.new("RGB", (40, 30), colour) for colour in ("red", "lime", "blue")]
    data = image_bytes(frames[0], fmt, save_all=True, append_images=frames[1:], lossless=True)
    with open_document(data, None, settings()) as document:
        pages = render_all(document)
    assert [tuple(page.image[15, 20]) for page in pages] == [(255, 0, 0), (0, 255, 0), (0, 0, 255)]


def test_jpeg_extra_pictures_are_not_pages():
    """Cameras store previews as extra MPO pictures inside a JPEG; the photo is one page."""
    frames = [Image.new("RGB", (40, 30), "red"), Image.new("RGB", (20, 15), "blue")]
    data = image_bytes(frames[0], "MPO", save_all=True, append_images=frames[1:])
    with open_document(data, None, settings()) as document:
        assert document.page_count == 1


def test_transparent_pixels_become_white():
    image = Image.new("RGBA", (4, 2), (255, 0, 0, 255))
    image.putpixel((0, 0), (255, 0, 0, 0))
    image.putpixel((1, 0), (0, 0, 0, 128))
    page = only_page(image_bytes(image))
    assert page.image.shape == (2, 4, 3) and page.image.dtype == np.uint8
    assert tuple(page.image[0, 0]) == (255, 255, 255)
    assert tuple(page.image[0, 1]) == (127, 127, 127)
    assert tuple(page.image[1, 3]) == (255, 0, 0)


def test_palette_with_a_transparent_colour_becomes_rgb_on_white():
    image = Image.new("P", (3, 1))
    image.putpalette([0, 0, 255, 0, 128, 0] + [0] * 762)
    image.putpixel((1, 0), 1)
    page = only_page(image_bytes(image, transparency=0))
    assert [tuple(p) for p in page.image[0]] == [(255, 255, 255), (0, 128, 0), (255, 255, 255)]


@pytest.mark.parametrize(
    ("mode", "value", "expected"),
    [
        ("L", 77, (77, 77, 77)),
        ("LA", (77, 255), (77, 77, 77)),
        ("1", 1, (255, 255, 255)),
        ("I;16", 65535, (255, 255, 255)),
        ("I;16", 32768, (128, 128, 128)),
        ("I;16B", 32768, (128, 128, 128)),
    ],
)
def test_grey_and_16_bit_images_become_8_bit_rgb(mode, value, expected):
    fmt = "TIFF" if mode == "I;16B" else "PNG"
    page = only_page(image_bytes(Image.new(mode, (5, 3), value), fmt))
    assert page.image.shape == (3, 5, 3) and page.image.dtype == np.uint8
    assert tuple(page.image[1, 2]) == expected


def test_cmyk_jpeg_becomes_rgb():
    page = only_page(image_bytes(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG", quality=100))
    red, green, blue = page.image[8, 8].astype(int)
    assert page.image.shape == (16, 16, 3)
    assert red > 230 and green < 30 and blue < 30


def test_jpeg_exif_orientation_is_applied():
    image = Image.new("RGB", (40, 20), "blue")
    image.paste((255, 0, 0), (0, 0, 20, 20))  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: display rotated 90 degrees clockwise
    page = only_page(image_bytes(image, "JPEG", exif=exif, quality=100))
    assert (page.height, page.width) == (40, 20)
    top, bottom = page.image[5, 10].astype(int), page.image[35, 10].astype(int)
    assert top[0] > 200 and top[2] < 60  # the left side is now on top
    assert bottom[2] > 200 and bottom[0] < 60


def test_images_above_max_page_pixels_are_downscaled_with_the_same_aspect():
    page = only_page(sample_image("PNG"), max_page_pixels=500_000)
    assert page.width * page.height <= 500_000
    assert page.width / page.height == pytest.approx(1191 / 1684, rel=0.01)
    assert page.scale == pytest.approx(page.width / 1191, rel=0.01)
    assert page.image.shape == (page.height, page.width, 3)


def test_image_above_max_image_pixels_is_refused_before_decoding():
    with pytest.raises(LimitExceededError) as error:
        open_document(sample_image("PNG"), None, settings(max_image_pixels=1_000_000))
    assert error.value.status == 413
    assert "1191x1684" in error.value.message and "HPS_MAX_IMAGE_PIXELS" in error.value.message


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares ``width x height`` and holds one tiny compressed row: what a
    decompression bomb looks like before it is decoded."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey
    data = zlib.compress(b"\x00" * (width + 1))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("width", "height", "limit"),
    [(9_000, 9_000, 50_000_000), (100_000, 100_000, 150_000_000)],
    ids=["over our limit", "over Pillow's own guard too"],
)
def test_decompression_bombs_are_refused(width, height, limit):
    with pytest.raises(LimitExceededError) as error:
        open_document(png_header_only(width, height), None, settings(max_image_pixels=limit))
    assert "HPS_MAX_IMAGE_PIXELS" in error.value.message
    assert f"{limit:,}" in error.value.message
    if width * height < Image.MAX_IMAGE_PIXELS:  # ours, with the declared size
        assert f"{width}x{height}" in error.value.message


def test_damaged_image_is_named_when_its_pixels_are_read():
    data = sample_image("PNG")[:5_000]
    with open_document(data, None, settings()) as document:
        with pytest.raises(InvalidDocumentError, match="the image could not be decoded"):
            render_all(document)


def test_unreadable_image_is_named():
    with pytest.raises(InvalidDocumentError, match="the image could not be opened"):
        open_document(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, None, settings())


# --- threads ---------------------------------------------------------------------------


def test_four_threads_render_the_same_and_different_documents_at_once():
    """pdfium is not thread-safe: without the module lock this crashes or mixes pages."""
    expected: dict[int, list[np.ndarray]] = {}
    for pages in (2, 3):
        with open_document(sample_pdf(pages), None, settings()) as document:
            expected[pages] = [page.image for page in render_all(document)]
    start = threading.Barrier(8)

    def same_pages(document: Document) -> bool:
        start.wait(timeout=30)
        images = [page.image for page in render_all(document)]
        return all(np.array_equal(a, b) for a, b in zip(images, expected[document.page_count], strict=True))

    def own_document(pages: int) -> bool:
        with open_document(sample_pdf(pages), None, settings()) as document:
            return same_pages(document)

    with open_document(sample_pdf(3), None, settings()) as shared, ThreadPoolExecutor(8) as pool:
        results = [pool.submit(same_pages, shared) for _ in range(4)]
        results += [pool.submit(own_document, pages) for pages in (2, 3, 2, 3)]
        assert all(result.result() for result in results)


def test_four_threads_render_frames_of_one_image_document_at_once():
    with open_document(multipage_tiff(3), None, settings()) as document:
        expected = [page.image for page in render_all(document)]
        start = threading.Barrier(4)

        def render(index: int) -> bool:
            start.wait(timeout=30)
            (page,) = document.render([index], 144)
            return np.array_equal(page.image, expected[index])

        with ThreadPoolExecutor(4) as pool:
            assert all(pool.map(render, [0, 1, 2, 1]))


@pytest.mark.parametrize(
    ("start", "limit", "expected"),
    [(None, None, [1, 3, 5, 7, 9]), (0, 2, [1, 3]), (2, 2, [5, 7]), (4, 8, [9]), (5, 2, []), (3, None, [7, 9])],
)
def test_a_window_of_the_selected_pages(start, limit, expected):
    assert page_window([1, 3, 5, 7, 9], start or 0, limit) == expected


@pytest.mark.parametrize(("start", "limit", "name"), [(-1, 2, "start"), ("0", 2, "start"), (True, 2, "start"),
                                                      (0, 0, "limit"), (0, 1.5, "limit")])
def test_a_bad_window_names_its_option(start, limit, name):
    with pytest.raises(InvalidRequestError) as error:
        parse_request({"start": start, "limit": limit}, RenderOptions)
    assert f"field '{name}'" in error.value.message and error.value.status == 422
