"""A document's outcome told truthfully: failures counted per page and per document; a
document where nothing could be read is an error with the status of its cause, after
its pages were delivered; a recogniser known to be down fails a document at once."""

from __future__ import annotations

import json

import numpy as np
import pytest

from docparse.errors import (
    InternalError,
    RecognitionError,
    RecognitionUnavailableError,
)
from docparse.page_images import pixels_of
from docparse.pipeline import DocumentInfo, DocumentPipeline
from docparse.protocol import json_bytes, parse_request
from docparse.types import LayoutBox, RegionResult, Task
from tests.unit.test_pipeline import Page, Tasks, detect, pages

REQUEST = parse_request({"file": "aGk="})


class FailingRecognizer:
    """Fails the regions of the pages listed in ``fail`` with ``failure``."""

    name = "failing"

    def __init__(self, failure: Exception, fail: set[int] | None = None, down: Exception | None = None):
        self.failure, self.fail, self.down = failure, fail, down
        self.calls = 0

    async def recognize(self, page, jobs, params):
        self.calls += 1
        index = int(pixels_of(page)[0, 0, 0])
        if self.fail is None or index in self.fail:
            return [RegionResult(failure=self.failure) for _ in jobs]
        return [RegionResult(content="read") for _ in jobs]

    async def ensure_available(self):
        if self.down is not None:
            raise self.down

    async def aclose(self):
        pass


async def run(recognizer, count: int = 3, detect_fn=detect) -> tuple[list[dict], object]:
    events: list[dict] = []

    async def emit(event):
        events.append(json.loads(json_bytes(event)))

    document = DocumentPipeline(recognizer, Tasks(), detect_fn, "test-layout")
    try:
        await document.run(REQUEST, pages(count), emit, "doc")
    except Exception as exc:  # noqa: BLE001 - the test looks at it
        return events, exc
    return events, None


async def test_partial_failures_are_counted_per_page_and_per_document_and_stay_a_success():
    events, error = await run(FailingRecognizer(RecognitionError("VLM answered 500"), fail={1}))
    assert error is None
    assert [e["result"]["regions"] for e in events[:3]] == [
        {"recognized": 2, "failed": 0}, {"recognized": 0, "failed": 2}, {"recognized": 2, "failed": 0},
    ]
    assert events[-1]["summary"] == {"pages": 3, "failedPages": 0, "recognizedRegions": 4, "failedRegions": 2}


async def test_nothing_read_because_the_vlm_is_unreachable_is_a_503_with_retry_after_after_the_pages():
    down = RecognitionUnavailableError("VLM at http://vlm/v1 could not be reached after 3 attempts", retry_after=7)
    events, error = await run(FailingRecognizer(down))
    assert [e["type"] for e in events] == ["page", "page", "page"]  # delivered, then the error
    assert isinstance(error, RecognitionUnavailableError)
    assert (error.status, error.retry_after) == (503, 7)
    assert error.message.startswith("no region of the document could be recognised (6 failed): VLM at http://vlm/v1")


async def test_nothing_read_because_the_vlm_answered_errors_is_a_502():
    events, error = await run(FailingRecognizer(RecognitionError("VLM answered 500 after 3 attempts: boom")))
    assert type(error) is RecognitionError and error.status == 502 and error.retry_after is None


async def test_every_page_failing_is_the_documents_error():
    async def broken_detect(image, options):
        raise RuntimeError("layout model crashed")

    events, error = await run(FailingRecognizer(RecognitionError("unused"), fail=set()), detect_fn=broken_detect)
    assert len(events) == 3 and all(e["result"]["prunedResult"]["error"] for e in events)
    assert isinstance(error, InternalError) and error.status == 500
    assert "no page of the document could be parsed (3 failed)" in error.message
    assert "layout model crashed" in error.message


async def test_a_document_with_nothing_to_read_is_not_an_error():
    async def only_figures(image, options):
        return [LayoutBox("image", 0.9, (0, 0, 50, 50))]

    class Figures(Tasks):
        def task_for(self, label):
            return Task.IMAGE

    events: list = []

    async def emit(event):
        events.append(event)

    recognizer = FailingRecognizer(RecognitionError("unused"))
    await DocumentPipeline(recognizer, Figures(), only_figures, "test-layout").run(REQUEST, pages(2), emit, "doc")
    assert events[-1].summary.recognizedRegions == 0 and events[-1].summary.failedRegions == 0


async def test_a_recogniser_known_to_be_down_fails_the_document_before_any_work():
    rendered = []

    async def watched_pages():
        rendered.append(1)
        yield DocumentInfo("pdf", 1, 1), Page(0, np.zeros((10, 10, 3), np.uint8))

    recognizer = FailingRecognizer(RecognitionError("unused"), down=RecognitionUnavailableError("down", retry_after=4))
    with pytest.raises(RecognitionUnavailableError) as refused:
        await DocumentPipeline(recognizer, Tasks(), detect, "test-layout").run(REQUEST, watched_pages(), _ignore, "doc")
    assert refused.value.retry_after == 4
    assert rendered == [] and recognizer.calls == 0


async def _ignore(event):
    pass
