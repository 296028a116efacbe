"""PDF pages rendered in worker processes (docparse.render_pool) on real pdfium: the
same pixels as in this process, the same errors, and a pathological page (a few
kilobytes of forms drawing each other: nested_forms_pdf) held to the time and memory
limits without holding other documents up."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

import numpy as np
import pytest

from docparse.documents import Document, open_document
from docparse.errors import InvalidDocumentError
from docparse.render_pool import RenderPool
from docparse.settings import Settings
from testkit.documents import corrupt_pdf, encrypted_pdf, nested_forms_pdf, pageless_pdf, sample_pdf

SETTINGS = Settings()
SLOW = nested_forms_pdf(6)  # a million squares: 9 s and 1.7 GB in pdfium here


@pytest.fixture(scope="module")
def pool() -> Iterator[RenderPool]:
    pool = RenderPool(workers=2, timeout=1.0, max_memory_mb=1024)
    yield pool
    pool.close()


def first_page(document: Document) -> np.ndarray:
    return next(iter(document.render([0], 144))).image


def test_pages_are_the_pixels_rendered_in_this_process(pool):
    data = sample_pdf(3)
    with open_document(data, None, SETTINGS, pool) as pooled, open_document(data, None, SETTINGS) as local:
        assert pooled.page_count == 3
        for mine, theirs in zip(pooled.render([2, 0, 1], 200), local.render([2, 0, 1], 200)):
            assert np.array_equal(mine.image, theirs.image) and mine.scale == theirs.scale
            assert mine.image.flags.c_contiguous and mine.index == theirs.index


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (corrupt_pdf(), "the PDF could not be opened: it is damaged or not a PDF"),
        (pageless_pdf(), "the PDF has no pages"),
        (encrypted_pdf(), "the PDF is encrypted"),
    ],
)
def test_a_workers_errors_keep_their_message(pool, data, message):
    with pytest.raises(InvalidDocumentError, match=message):
        open_document(data, None, SETTINGS, pool)


def test_a_page_past_the_time_limit_is_abandoned_while_other_documents_render(pool):
    with open_document(SLOW, None, SETTINGS, pool) as slow, open_document(sample_pdf(3), None, SETTINGS, pool) as other:
        with ThreadPoolExecutor(1) as thread:
            started = time.monotonic()
            stuck = thread.submit(first_page, slow)
            others = [page.image for page in other.render([0, 1, 2], 144)]
            assert not stuck.done(), "the other document waited for the slow page"
            with pytest.raises(InvalidDocumentError) as refused:
                stuck.result()
        seconds = time.monotonic() - started
    assert refused.value.message == (
        "page 1 of the PDF took longer than 1 s to render (HPS_RENDER_TIMEOUT); it was abandoned"
    )
    assert refused.value.status == 422 and seconds < 3  # 1 s, then the worker is stopped at once
    assert len(others) == 3
    with open_document(sample_pdf(1), None, SETTINGS, pool) as after:  # the pool replaced the worker
        assert first_page(after).shape == (1684, 1191, 3)


def test_a_page_past_the_memory_limit_stops_only_its_worker():
    pool = RenderPool(workers=1, timeout=60, max_memory_mb=400)
    try:
        with open_document(SLOW, None, SETTINGS, pool) as slow:
            with pytest.raises(InvalidDocumentError, match="page 1 of the PDF could not be rendered: .* 400 MB"):
                first_page(slow)
        with open_document(sample_pdf(1), None, SETTINGS, pool) as after:
            assert first_page(after).shape == (1684, 1191, 3)
    finally:
        pool.close()
