"""The GLM-OCR API server's contract (``/api/ocr/*``, ``/api/info``), on our pipeline.

Users of the GLM-OCR server (FastAPI on port 8007 in front of vLLM) send multipart forms
and read these shapes; the models here validate the forms, build the answers and are
what ``/docs`` shows. A form and the pipeline's request meet in ``*_request``: each
image or document becomes one ``/layout-parsing`` request, so every API goes through
the same admission, Triton and VLM bound. Fields beyond that server's are ours
(``logId``, a page's ``error``); none of its fields is left out.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from docparse.extraction import parse_schema
from docparse.protocol import MAX_PAGES_SPEC, LogId
from docparse.recognition.tasks import TaskTable
from docparse.responses import ErrorEnvelope, LayoutParsingResponse, PageResult, omitted_when_unset
from docparse.settings import MIN_DPI

OcrTask = Literal["text", "formula", "table"]
#: The whole image's task as PaddleOCR-VL's ``promptLabel`` names it.
PROMPT_LABEL: dict[str, str] = {"text": "ocr", "formula": "formula", "table": "table"}
FEATURES = (
    "Text Recognition (printed/handwritten)",
    "Formula Recognition (LaTeX)",
    "Table Recognition (HTML/Markdown)",
    "Information Extraction (JSON schema)",
    "PDF Document Parsing (layout + OCR)",
    "SSE Streaming",
    "Batch Processing",
)
ENDPOINTS = {
    "POST /api/ocr/recognize": "Single image OCR",
    "POST /api/ocr/extract": "Information extraction",
    "POST /api/ocr/batch": "Batch image OCR",
    "POST /api/ocr/document": "Full document parsing",
    "POST /api/ocr/document/stream": "SSE streaming document parsing",
    "GET /health": "Health check",
    "GET /api/info": "Service information",
}


# --- forms ------------------------------------------------------------------------------


class _Form(BaseModel):
    """A form's fields besides its files; an unknown field is refused by name."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    max_tokens: int | None = Field(None, ge=1, description="Most tokens the VLM writes per region (default HPS_VLM_MAX_TOKENS).")
    model: str | None = Field(None, min_length=1, max_length=200, description="The VLM profile (GET /api/info `models`); default the first.")
    logId: LogId | None = Field(None, description="Request id echoed in the answer and logs (printable ASCII).")


class RecognizeForm(_Form):
    """``POST /api/ocr/recognize``: one ``image`` file and these fields."""

    task: OcrTask = Field("text", description="text, formula (LaTeX) or table (HTML or Markdown).")


class ExtractForm(_Form):
    """``POST /api/ocr/extract``: one ``image`` file and these fields."""

    schema_: str = Field(
        ..., alias="schema",
        description='A JSON Schema, or a GLM-OCR template such as {"name": "", "items": [{"price": ""}]}.',
    )

    def json_schema(self) -> dict[str, Any]:
        return parse_schema(self.schema_)


class BatchForm(RecognizeForm):
    """``POST /api/ocr/batch``: ``images`` files (repeated) and these fields."""


class DocumentForm(_Form):
    """``POST /api/ocr/document`` and ``/document/stream``: one ``file`` and these fields."""

    pages: str = Field("all", max_length=MAX_PAGES_SPEC, description='"all", or 1-based ranges such as "1-3,7".')
    dpi: int | None = Field(None, ge=MIN_DPI, description="Rendering resolution of PDF pages (default HPS_RENDER_DPI).")
    enable_layout: bool = Field(True, description="false reads each whole page as one region with `task`.")
    task: OcrTask = Field("text", description="With enable_layout=false: the whole page's task.")
    text_layer: Literal["auto", "off"] | None = Field(
        None, description="auto: a PDF's text regions read from its own text where reliable; off: all recognized "
        "(default HPS_TEXT_LAYER).",
    )


def image_request(file_b64: str, task: str, form: _Form, log_id: str) -> dict[str, Any]:
    """One image read whole with ``task``: the ``/layout-parsing`` request."""
    request: dict[str, Any] = {
        "file": file_b64, "fileType": 1, "useLayoutDetection": False,
        "promptLabel": PROMPT_LABEL[task], "logId": log_id,
    }
    return _common(request, form)


def _common(request: dict[str, Any], form: _Form) -> dict[str, Any]:
    """The fields every form passes on as they are: max_tokens and model."""
    if form.max_tokens is not None:
        request["maxNewTokens"] = form.max_tokens
    if form.model is not None:
        request["model"] = form.model
    return request


def extract_request(file_b64: str, form: ExtractForm, log_id: str) -> dict[str, Any]:
    """One image read into JSON for the form's schema."""
    return {**image_request(file_b64, "text", form, log_id), "jsonSchema": form.json_schema()}


def document_request(file_b64: str, form: DocumentForm, log_id: str) -> dict[str, Any]:
    """A PDF or image parsed page by page."""
    request: dict[str, Any] = {"file": file_b64, "logId": log_id}
    if form.pages.strip().lower() != "all":
        request["pages"] = form.pages
    if form.dpi is not None:
        request["dpi"] = form.dpi
    if not form.enable_layout:
        request.update(useLayoutDetection=False, promptLabel=PROMPT_LABEL[form.task])
    if form.text_layer is not None:
        request["textLayer"] = form.text_layer
    return _common(request, form)


# --- answers ----------------------------------------------------------------------------


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RecognizeResponse(_Answer):
    text: str = Field(description="What was read: text, LaTeX (formula) or the table as HTML or Markdown.")
    task: OcrTask
    time: float = Field(description="Seconds the request took.")
    logId: str


class ExtractResponse(_Answer):
    data: Any = Field(description="The extracted data; it fits the schema.")
    raw: str = Field(description="The model's answer as it gave it.")
    time: float = Field(description="Seconds the request took.")
    logId: str


class OcrErrorBody(ErrorEnvelope):
    """Every error of ``/api/ocr/*``: the GLM-OCR server's ``error`` beside our envelope."""

    error: str = Field(description="What went wrong (the same as errorMsg).")
    raw: str | None = omitted_when_unset("/api/ocr/extract, 422: the model's answer that did not fit the schema.")


class BatchItem(_Answer):
    index: int = Field(description="Position of the image in the request, from 0.")
    text: str | None = omitted_when_unset("What was read.")
    error: str | None = omitted_when_unset("Why this image failed.")
    errorCode: int | None = omitted_when_unset("With error: its HTTP status.")


class BatchResponse(_Answer):
    results: list[BatchItem] = Field(description="One per image, in order; a bad image has its own error.")
    total_time: float = Field(description="Seconds the batch took.")
    throughput: str = Field(description='Images per second, as "12.3 imgs/s".')
    logId: str


class OcrRegion(_Answer):
    label: str = Field(description="Layout label: text, table, display_formula, image…")
    bbox: list[int] = Field(description="x1, y1, x2, y2 in page-image pixels.")
    score: float = Field(description="The layout detector's confidence.")
    task: str = Field(description="text, table, formula; image (kept as a picture) or drop (not read).")
    text: str = Field(description="What was read in the region.")
    error: str | None = omitted_when_unset("Why the region failed.")


class OcrPage(_Answer):
    page_number: int = Field(description="1-based page number in the document.")
    text: str = Field(description="The page as Markdown (the same as /layout-parsing's markdown.text).")
    regions: list[OcrRegion]
    region_count: int
    width: int = Field(description="Page image width in pixels.")
    height: int = Field(description="Page image height in pixels.")
    error: str | None = omitted_when_unset("Set when the page could not be parsed.")


class DocumentResponse(_Answer):
    pages: list[OcrPage]
    total_pages: int = Field(description="Pages in the document.")
    parsed_pages: int = Field(description="Pages parsed (the selection).")
    total_time: float
    throughput: str = Field(description='Pages per second, as "1.23 pgs/s".')
    logId: str


class StartEvent(_Answer):
    type: Literal["start"] = "start"
    total_pages: int
    pages_to_parse: int
    logId: str


class PageStreamEvent(OcrPage):
    type: Literal["page"] = "page"
    progress: str = Field(description='Pages done of the selection, "3/10".')


class ErrorStreamEvent(_Answer):
    type: Literal["error"] = "error"
    error: str
    errorCode: int
    logId: str


class CompleteEvent(_Answer):
    type: Literal["complete"] = "complete"
    total_time: float
    throughput: str
    logId: str


class InfoResponse(_Answer):
    model: str = Field(description="The VLM's served model name, or the CPU recognizer's name.")
    version: str = Field(description="This server's version.")
    features: list[str]
    layout_detection: bool
    layout_model: str
    recognizer: str
    models: list[str] = Field(default_factory=list, description="Names a request's `model` may give, the default first.")
    endpoints: dict[str, str]


# --- from our page results --------------------------------------------------------------


def ocr_page(page: PageResult, tasks: TaskTable) -> OcrPage:
    """A parsed page as the GLM-OCR server gives it: its Markdown, and each region with
    its label, box, score, task and text."""
    pruned = page.prunedResult
    boxes = pruned.layout_det_res.boxes
    regions = [
        OcrRegion(
            label=block.block_label,
            bbox=block.block_bbox,
            score=boxes[block.block_id].score if 0 <= block.block_id < len(boxes) else 1.0,
            task=tasks.task_for(block.block_label).value,
            text=block.block_content,
            error=block.error,
        )
        for block in pruned.parsing_res_list
    ]
    return OcrPage(
        page_number=pruned.page_index + 1, text=page.markdown.text, regions=regions, region_count=len(regions),
        width=pruned.width, height=pruned.height, error=pruned.error,
    )


def recognized_text(answer: LayoutParsingResponse) -> str:
    """The one region's text of an image read whole (a failed read is the answer's error,
    raised before this)."""
    blocks = answer.result.layoutParsingResults[0].prunedResult.parsing_res_list
    return blocks[0].block_content if blocks else ""


def rate(count: int, seconds: float, unit: str) -> str:
    """GLM-OCR's throughput string: ``"1.23 pgs/s"``."""
    return f"{count / seconds:.2f} {unit}/s" if seconds > 0 else "N/A"
