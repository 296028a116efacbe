"""The page pipeline's guarantees, independent of Triton: document order, pipelining,
and nothing accepted is lost."""

import asyncio
import json
from dataclasses import dataclass

import numpy as np
import pytest

from docparse.errors import InvalidDocumentError
from docparse.page_images import pixels_of
from docparse.pipeline import DocumentInfo, DocumentPipeline
from docparse.protocol import json_bytes, parse_request
from docparse.recognition.tasks import TaskTable
from docparse.recognition.vlm import VlmClient, VlmRecognizer
from docparse.scheduling import Priority
from docparse.settings import Settings, VlmSettings
from docparse.types import LayoutBox, RegionResult, Task


@dataclass
class Page:
    index: int
    image: np.ndarray
    width: int = 100
    height: int = 100


class EchoRecognizer:
    """Answers each region with its label after a delay chosen per page."""

    name = "echo"
    supports_extraction = False

    def __init__(self, delays: dict[int, float]):
        self.delays = delays

    async def recognize(self, page, jobs, params):
        number = int(pixels_of(page)[0, 0, 0])
        await asyncio.sleep(self.delays.get(number, 0))
        return [RegionResult(content=f"{job.box.label} of page {number}") for job in jobs]

    async def ensure_available(self):
        pass

    async def aclose(self):
        pass


class Tasks:
    def task_for(self, label):
        return Task.TEXT


async def detect(image, options):
    return [LayoutBox("text", 0.9, (0, 20, 50, 50)), LayoutBox("doc_title", 0.9, (0, 0, 100, 10))]


async def pages(count: int, fail_at: int | None = None):
    info = DocumentInfo("pdf", count, count)
    for i in range(count):
        if i == fail_at:
            raise InvalidDocumentError(f"page {i + 1} could not be rendered")
        yield info, Page(i, np.full((100, 100, 3), i, dtype=np.uint8))


def pipeline(recognizer, detect_fn=detect) -> DocumentPipeline:
    return DocumentPipeline(recognizer, Tasks(), detect_fn, "test-layout", max_pages_in_flight=4)


REQUEST = parse_request({"file": "aGk="})


def wire(event) -> dict:
    """An event as a client receives it."""
    return json.loads(json_bytes(event))


async def test_pages_are_emitted_in_document_order_even_when_they_finish_out_of_order():
    events = []

    async def emit(event):
        events.append(wire(event))

    # Page 0 is slowest: later pages finish first, yet are emitted after it.
    final = await pipeline(EchoRecognizer({0: 0.2, 1: 0.05})).run(REQUEST, pages(3), emit, "id")
    assert [e.get("pageIndex") for e in events] == [0, 1, 2, None]
    assert wire(final)["dataInfo"] == {"type": "pdf", "numPages": 3,
                                 "pages": [{"width": 100, "height": 100}] * 3}
    assert events[0]["result"]["markdown"]["text"] == "# doc_title of page 0\n\ntext of page 0"


async def test_pages_are_worked_on_at_the_same_time():
    recognizer = CountingRecognizer(delay=0.05)
    await pipeline(recognizer).run(REQUEST, pages(6), _ignore, "id")
    assert recognizer.most == 4  # max_pages_in_flight: four pages at once, not one after another


async def test_a_page_whose_layout_fails_is_kept_with_its_error():
    async def flaky_detect(image, options):
        if image[0, 0, 0] == 1:
            raise RuntimeError("layout model crashed")
        return await detect(image, options)

    events = []

    async def emit(event):
        events.append(wire(event))

    await pipeline(EchoRecognizer({}), flaky_detect).run(REQUEST, pages(3), emit, "id")
    assert [e["type"] for e in events] == ["page", "page", "page", "final"]
    assert "layout model crashed" in events[1]["result"]["prunedResult"]["error"]
    assert events[2]["result"]["markdown"]["text"]


async def test_pages_before_a_rendering_failure_are_delivered_then_the_error_raised():
    events = []

    async def emit(event):
        events.append(wire(event))

    with pytest.raises(InvalidDocumentError, match="page 3"):
        await pipeline(EchoRecognizer({})).run(REQUEST, pages(5, fail_at=2), emit, "id")
    assert [e["pageIndex"] for e in events] == [0, 1]


class CountingRecognizer(EchoRecognizer):
    """Records the most pages it was ever recognising at once."""

    def __init__(self, delay: float):
        super().__init__({})
        self.delay, self.now, self.most = delay, 0, 0

    async def recognize(self, page, jobs, params):
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            await asyncio.sleep(self.delay)
            return await super().recognize(page, jobs, params)
        finally:
            self.now -= 1


async def test_pages_in_flight_over_all_documents_stay_within_the_process_budget():
    recognizer = CountingRecognizer(delay=0.05)
    shared = DocumentPipeline(recognizer, Tasks(), detect, "test-layout", max_pages_in_flight=4, max_pages_in_process=3)
    finals = await asyncio.gather(*(shared.run(REQUEST, pages(5), _ignore, f"doc{i}") for i in range(3)))
    assert recognizer.most == 3  # 3 documents x 4 pages would allow 12
    assert all(len(wire(final)["dataInfo"]["pages"]) == 5 for final in finals)


async def test_a_document_that_fails_or_is_abandoned_gives_its_pages_budget_back():
    shared = DocumentPipeline(CountingRecognizer(delay=0.05), Tasks(), detect, "test-layout",
                              max_pages_in_flight=2, max_pages_in_process=2)
    with pytest.raises(InvalidDocumentError):
        await shared.run(REQUEST, pages(5, fail_at=3), _ignore, "fails")
    abandoned = asyncio.create_task(shared.run(REQUEST, pages(5), _ignore, "abandoned"))
    await asyncio.sleep(0.02)  # it holds both pages of the budget now
    abandoned.cancel()
    with pytest.raises(asyncio.CancelledError):
        await abandoned
    # With a leaked budget this document would wait forever.
    final = await asyncio.wait_for(shared.run(REQUEST, pages(3), _ignore, "next"), timeout=5)
    assert len(wire(final)["dataInfo"]["pages"]) == 3


async def test_layout_off_sends_the_whole_page_as_one_region():
    events = []

    async def emit(event):
        events.append(wire(event))

    async def no_detect(image, options):
        raise AssertionError("layout detection must not run")

    request = parse_request({"file": "aGk=", "useLayoutDetection": False, "promptLabel": "table"})
    await pipeline(EchoRecognizer({}), no_detect).run(request, pages(1), emit, "id")
    items = events[0]["result"]["prunedResult"]["parsing_res_list"]
    assert [(i["block_label"], i["block_bbox"]) for i in items] == [("table", [0, 0, 100, 100])]


async def test_final_timings_name_every_stage_and_crop_cpu_grows_with_the_regions(sim):
    """crop_cpu counts the orchestrator's own CPU per region (crop, resize, JPEG), so a
    page with more regions costs more; no wall-clock threshold is involved."""
    settings = Settings(vlm=VlmSettings(url=sim.url, max_retries=0))
    client = VlmClient(settings.vlm)
    tasks = TaskTable.from_settings(settings.recognition)
    noise = np.random.default_rng(0).integers(0, 256, (800, 800, 3), dtype=np.uint8)

    async def one_page():
        yield DocumentInfo("image", 1, 1), Page(0, noise, 800, 800)

    async def final_timings(regions: int) -> dict:
        async def detect_regions(image, options):
            return [LayoutBox("text", 0.9, (0, 0, 400 + i, 400)) for i in range(regions)]

        engine = VlmRecognizer(client, tasks, settings)
        final = await DocumentPipeline(engine, tasks, detect_regions, "test-layout").run(
            REQUEST, one_page(), _ignore, "id"
        )
        return wire(final)["timings"]

    try:
        one, many = await final_timings(1), await final_timings(12)
    finally:
        await client.aclose()
    assert set(one) == {"render", "layout", "recognition", "assemble", "total", "crop_cpu", "assemble_cpu"}
    assert all(value >= 0 for value in one.values())
    assert many["crop_cpu"] > one["crop_cpu"]
    assert many["assemble_cpu"] > 0


async def _ignore(event):
    pass


class GateRecognizer(EchoRecognizer):
    """Notes whose page it starts (the logId) and holds each until the test releases it."""

    def __init__(self):
        super().__init__({})
        self.started: list[str] = []
        self.gates: list[asyncio.Event] = []

    async def recognize(self, page, jobs, params):
        gate = asyncio.Event()
        self.started.append(params.log_id)
        self.gates.append(gate)
        await gate.wait()
        return await super().recognize(page, jobs, params)

    def release_oldest(self) -> None:
        next(gate for gate in self.gates if not gate.is_set()).set()


async def until(condition, what: str, timeout: float = 5.0) -> None:
    """Wait for ``condition`` (polled, bounded): the pipeline runs assembly in threads."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"{what}: not within {timeout:g} s"
        await asyncio.sleep(0.001)


async def test_a_freed_page_goes_to_the_one_page_request_then_the_big_document_and_jobs_last():
    gate = GateRecognizer()
    shared = DocumentPipeline(gate, Tasks(), detect, "test-layout", max_pages_in_flight=4, max_pages_in_process=4)
    runs = [asyncio.create_task(shared.run(REQUEST, pages(6), _ignore, "big"))]
    await until(lambda: len(gate.started) == 4, "the big document to take the whole budget")
    runs.append(asyncio.create_task(shared.run(REQUEST, pages(6), _ignore, "job", priority=Priority.BATCH)))
    runs.append(asyncio.create_task(shared.run(REQUEST, pages(1), _ignore, "small")))
    await until(lambda: shared._page_budget.waiting == 2, "the job and the one-page request to wait")

    total = 13
    for released in range(1, total + 1):
        gate.release_oldest()  # one page done: its budget goes to the next page
        await until(lambda: len(gate.started) >= min(total, 4 + released), "the freed page to be taken")
    await asyncio.gather(*runs)
    # The one-page request holds nothing: first. The job waits while the big one has pages.
    assert gate.started == ["big"] * 4 + ["small"] + ["big"] * 2 + ["job"] * 6
