"""A PDF's text layer read region by region (docparse.text_layer): the words where the
page shows them, each region's text equal to the PDF's, and every region whose text
layer is missing or unreliable left to the recognizer."""

from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
import pypdfium2 as pdfium
import pytest

from docparse.documents import RenderedPage, open_document
from docparse.pipeline import DocumentInfo, DocumentPipeline
from docparse.protocol import json_bytes, parse_request
from docparse.recognition.tasks import TaskTable
from docparse.responses import PageTextLayer
from docparse.settings import Settings
from docparse.text_layer import read_regions, runs
from docparse.types import READ_TASKS, LayoutBox, RegionJob, RegionResult, Task
from testkit.documents import CHINESE_TEXT, DPI, ENGLISH_TEXT, PARAGRAPH_TITLE_TEXT, TABLE_ROWS, TITLE_TEXT, sample_pdf
from testkit.layout_template import TEMPLATE
from testkit.text_layers import KINDS, text_layer_pdf

TASKS = TaskTable()


def rendered(data: bytes, dpi: int = DPI) -> list[RenderedPage]:
    """Every page of ``data`` with its text layer, as pdf_render sends them."""
    with open_document(data, None, Settings()) as document:
        return [replace(page, text_layer=document.text_layer(page.index, page.scale))
                for page in document.render(list(range(document.page_count)), dpi)]


def template_jobs(page: RenderedPage) -> list[RegionJob]:
    """The regions the stand-in layout model finds on the generated pages."""
    return [RegionJob(LayoutBox(label, 1.0, (x1 * page.width, y1 * page.height, x2 * page.width, y2 * page.height)),
                      TASKS.task_for(label)) for label, (x1, y1, x2, y2) in TEMPLATE]


def read_by_label(page: RenderedPage, tasks: frozenset[Task] = READ_TASKS) -> dict[str, str]:
    assert page.text_layer is not None
    jobs = template_jobs(page)
    return {jobs[i].box.label: text for i, text in read_regions(page.text_layer, page.image, jobs, tasks).items()}


@pytest.fixture(scope="module")
def pages() -> dict[str, RenderedPage]:
    return dict(zip(KINDS, rendered(text_layer_pdf(*KINDS))))


def test_a_good_text_layer_reads_every_text_region_exactly(pages):
    read = read_by_label(pages["good"])
    assert set(read) == {"doc_title", "text", "paragraph_title", "table", "display_formula"}  # not the figure
    assert read["doc_title"] == TITLE_TEXT and read["paragraph_title"] == PARAGRAPH_TITLE_TEXT
    english, chinese = read["text"].split("\n", 3)[:3], read["text"]
    assert " ".join(read["text"].split()).startswith(ENGLISH_TEXT)
    assert CHINESE_TEXT in chinese.replace("\n", ""), english


def test_a_table_keeps_its_cells_and_a_formula_its_symbols(pages):
    read = read_by_label(pages["good"])
    for row in TABLE_ROWS:
        assert "<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" in read["table"]
    assert read["display_formula"].startswith("E = mc")


def test_a_vlm_gets_the_text_layer_for_text_regions_only(pages):
    assert set(read_by_label(pages["good"], frozenset({Task.TEXT}))) == {"doc_title", "text", "paragraph_title"}


@pytest.mark.parametrize("kind", ["scanned", "private_use", "hidden_ocr", "picture_text"])
def test_a_missing_or_unreliable_text_layer_leaves_the_paragraph_to_the_recognizer(pages, kind):
    read = read_by_label(pages[kind])
    assert "text" not in read, read.get("text")
    if kind in ("private_use", "picture_text"):  # the rest of the page is real text
        assert read["doc_title"] == TITLE_TEXT and "<td>Recognition</td>" in read["table"]


def test_text_with_no_ink_under_it_is_not_read(pages):
    """White text, or text under a picture: the page shows nothing there."""
    page = pages["good"]
    assert page.text_layer is not None
    blank = np.full_like(page.image, 255)
    assert read_regions(page.text_layer, blank, template_jobs(page), READ_TASKS) == {}


def test_words_sit_where_the_page_shows_them_also_on_a_rotated_page():
    """Each word's box covers ink in the rendered page, at any dpi and rotation."""
    pdf = pdfium.PdfDocument(sample_pdf(1))
    pdf[0].set_rotation(90)
    buffer = io.BytesIO()
    pdf.save(buffer)
    for page in rendered(sample_pdf(1), 72) + rendered(buffer.getvalue()):
        assert page.text_layer is not None and len(page.text_layer.words) > 50
        for text, x1, y1, x2, y2, *_ in page.text_layer.words:
            assert page.image[int(y1):int(y2) + 1, int(x1):int(x2) + 1].min() < 200, (text, page.width)


def test_the_words_are_the_pdfs_own_text():
    """The same words, in the same order, as pdfium's own text of the page."""
    page = rendered(sample_pdf(1))[0]
    assert page.text_layer is not None
    expected = pdfium.PdfDocument(sample_pdf(1))[0].get_textpage().get_text_range().split()
    assert [w[0] for w in page.text_layer.words] == expected


def test_images_have_no_text_layer():
    from testkit.documents import sample_image

    with open_document(sample_image(), None, Settings()) as document:
        assert document.text_layer(0, 1.0) is None


def test_a_row_splits_into_cells_where_its_words_stand_apart():
    words = [("North", 0, 0, 50, 20, 5, 0), ("America", 55, 0, 120, 20, 7, 0), ("12", 300, 1, 320, 21, 2, 0)]
    assert [line.text for line, _ in runs(words)] == ["North America", "12"]


def test_the_page_json_carries_the_text_layer_only_when_asked():
    from docparse.responses import RenderedPageInfo

    info = RenderedPageInfo(index=0, width=1, height=1, scale=1.0, kind="pdf", pageCount=1, selected=1)
    assert b"textLayer" not in json_bytes(info)
    words = PageTextLayer(words=[("a", 0, 0, 1, 1, 1, 0)])
    assert RenderedPageInfo.model_validate_json(json_bytes(info.model_copy(update={"textLayer": words}))).textLayer == words


# --- the pipeline ---------------------------------------------------------------------------


class Recognizer:
    """Reads each region as ``ocr <label>`` and records the labels it was sent."""

    name = "test-ocr"
    supports_extraction = False

    def __init__(self, by_default: bool = False, tasks: frozenset[Task] = frozenset({Task.TEXT})) -> None:
        self.text_layer_by_default = by_default
        self.text_layer_tasks = tasks
        self.sent: list[str] = []

    async def recognize(self, page, jobs, params):
        self.sent += [job.box.label for job in jobs if job.task in READ_TASKS]
        return [RegionResult(f"ocr {job.box.label}" if job.task in READ_TASKS else "") for job in jobs]

    async def ensure_available(self):
        pass

    async def aclose(self):
        pass


async def parse(recognizer: Recognizer, body: dict, default: str = "default", kinds: tuple[str, ...] = KINDS) -> list[dict]:
    """The page results of the generated PDF through the pipeline, as a client gets them."""
    pages = rendered(text_layer_pdf(*kinds))

    async def detect(image, options):
        return [job.box for job in template_jobs(pages[0])]

    async def stream():
        for page in pages:
            yield DocumentInfo("pdf", len(pages), len(pages)), page

    events: list[dict] = []

    async def emit(event):
        import json

        events.append(json.loads(json_bytes(event)))

    pipeline = DocumentPipeline(recognizer, TASKS, detect, "template", text_layer_default=default)
    await pipeline.run(parse_request({"file": "aGk=", **body}), stream(), emit, "id")
    return [e["result"]["prunedResult"] for e in events if e["type"] == "page"]


def blocks(page: dict) -> dict[str, tuple[str, str | None]]:
    return {b["block_label"]: (b["block_content"], b.get("source")) for b in page["parsing_res_list"]}


async def test_auto_reads_good_regions_from_the_pdf_and_sends_only_the_rest():
    recognizer = Recognizer()
    good, scanned, private_use, _, picture_text = await parse(recognizer, {"textLayer": "auto"})
    assert blocks(good)["doc_title"] == (TITLE_TEXT, "text_layer")
    assert blocks(good)["table"] == ("ocr table", "test-ocr")  # a VLM reads tables itself
    assert blocks(scanned)["doc_title"] == ("ocr doc_title", "test-ocr")
    assert blocks(private_use)["text"] == ("ocr text", "test-ocr")
    assert blocks(picture_text)["paragraph_title"] == (PARAGRAPH_TITLE_TEXT, "text_layer")
    # Per page: good 2 (table, formula); scanned 5; private_use 3; hidden_ocr 5; picture_text 3.
    assert len(recognizer.sent) == 18 and recognizer.sent.count("doc_title") == 2
    assert "source" not in next(b for b in good["parsing_res_list"] if b["block_label"] == "image")


async def test_a_page_read_whole_from_its_text_layer_never_calls_the_recognizer():
    recognizer = Recognizer(by_default=True, tasks=READ_TASKS)
    (page,) = await parse(recognizer, {}, kinds=("good",))
    assert recognizer.sent == []
    assert all(source == "text_layer" for _, source in [blocks(page)[k] for k in ("text", "table", "display_formula")])


@pytest.mark.parametrize(
    "body, default, by_default, uses",
    [
        ({}, "default", False, False),  # a VLM: off unless asked
        ({}, "default", True, True),  # the CPU OCR: auto
        ({}, "auto", False, True),  # HPS_TEXT_LAYER=auto
        ({"textLayer": "off"}, "auto", True, False),  # the request wins
        ({"textLayer": "auto"}, "off", False, True),
        ({"textLayer": "auto", "useLayoutDetection": False, "jsonSchema": {"a": ""}}, "auto", True, False),
    ],
)
async def test_which_requests_use_the_text_layer(body, default, by_default, uses):
    recognizer = Recognizer(by_default=by_default)
    pipeline = DocumentPipeline(recognizer, TASKS, None, "x", text_layer_default=default)  # type: ignore[arg-type]
    assert pipeline.uses_text_layer(parse_request({"file": "aGk=", **body})) is uses
    sources = {b[1] for page in await parse(recognizer, body, default, kinds=("good",)) for b in blocks(page).values()} \
        if "jsonSchema" not in body else set()
    assert ("text_layer" in sources) is (uses and "jsonSchema" not in body)


def test_an_unknown_text_layer_value_is_refused_naming_the_field_and_values():
    from docparse.errors import InvalidRequestError

    with pytest.raises(InvalidRequestError, match="field 'textLayer': Input should be 'auto' or 'off'") as error:
        parse_request({"file": "aGk=", "textLayer": "on"})
    assert error.value.status == 422


def test_hps_text_layer_is_checked_at_start(monkeypatch):
    from docparse.settings import SettingsError

    monkeypatch.setenv("HPS_TEXT_LAYER", "sometimes")
    with pytest.raises(SettingsError, match="HPS_TEXT_LAYER: Input should be 'auto', 'off' or 'default'"):
        Settings.load()
    monkeypatch.setenv("HPS_TEXT_LAYER", "auto")
    assert Settings.load().recognition.text_layer == "auto"


def test_a_region_inside_another_is_not_read_twice_nor_sent_to_the_recognizer(pages):
    """Detectors nest boxes: the lines go to one region, the nested one reads empty
    from the text layer (as the OCR's lines would leave it), and no OCR runs for it."""
    page = pages["good"]
    assert page.text_layer is not None
    jobs = template_jobs(page)
    x1, y1, x2, y2 = next(job.box.coordinate for job in jobs if job.box.label == "text")
    nested = RegionJob(LayoutBox("text", 0.9, (x1 + 100, y1 + 2, x2 - 2, (y1 + y2) / 2)), Task.TEXT)
    read = read_regions(page.text_layer, page.image, [*jobs, nested], READ_TASKS)
    assert read[len(jobs)] == "" and ENGLISH_TEXT.split()[0] in read[[j.box.label for j in jobs].index("text")]
