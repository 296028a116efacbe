"""A page that fails after other pages were sent (found by ``make fuzz``): the document
ends with that page's error, at once. The Python backend loses an error that follows
responses on a decoupled BLS stream, and with the end-of-stream flag on that error the
orchestrator waited for ``pdf_render`` forever (the client, until its deadline)."""

from __future__ import annotations

import base64
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from bench.fuzz import mutations
from bench.fuzz.mutations import image_seeds, tiff_with_size
from docparse.client import TritonLayoutClient
from docparse.errors import DocParseError, LimitExceededError
from docparse.responses import PageEvent

pytestmark = pytest.mark.triton


def test_a_page_failing_after_the_first_ends_the_document_with_its_error(triton, vlm):
    # Two frames; the second declares 2147483647 x 10 pixels: refused when its turn comes.
    tiff = tiff_with_size(image_seeds()["small-2p.tiff"], 2**31 - 1, 10, frame=1)
    client = TritonLayoutClient(triton.grpc_url, timeout=30)
    events = []
    start = time.monotonic()
    with pytest.raises(LimitExceededError, match="2147483647x10 pixels"):
        for event in client.stream({"file": base64.b64encode(tiff).decode()}):
            events.append(event)
    assert time.monotonic() - start < 10
    assert [type(event) for event in events] == [PageEvent]


def test_the_unary_model_answers_a_document_error_sent_after_pages(triton, vlm):
    """One hop up, the same: the unary ``layout-parsing`` reads the orchestrator over BLS
    and waited forever for a stream whose error followed a page; it now asks for errors
    in-band (IN_BAND_ERRORS) and answers the error envelope."""
    tiff = tiff_with_size(image_seeds()["small-2p.tiff"], 2**31 - 1, 10, frame=1)
    client = TritonLayoutClient(triton.grpc_url, timeout=30)
    start = time.monotonic()
    with pytest.raises(LimitExceededError, match="2147483647x10 pixels"):
        client.parse({"file": base64.b64encode(tiff).decode()})
    assert time.monotonic() - start < 10


def test_every_damaged_image_among_many_at_once_is_its_error(triton, vlm):
    """Over BLS an error that comes first was lost now and then too (about 1 in 150 under
    the fuzz run's load): the document was a success with no page. Errors now come
    in-band; none may go missing."""
    png = image_seeds()["small.png"]
    bodies = [png[: len(png) // 2], mutations.png_with_size(png, 2**31 - 1, 2**31 - 1)] * 200
    client = TritonLayoutClient(triton.grpc_url, timeout=30)

    def status(data: bytes) -> int:
        try:
            list(client.stream({"file": base64.b64encode(data).decode()}))
        except DocParseError as exc:
            return exc.status
        return 200

    with ThreadPoolExecutor(8) as pool:
        statuses = Counter(pool.map(status, bodies))
    assert statuses == {422: 200, 413: 200}
