"""The response contract: every answer and event, as the pydantic models that build it.

The pipeline builds these models, the Triton models and the gateway send them, clients
read them back, and the gateway's ``/openapi.json`` is generated from them: one
definition, so the documentation cannot drift from what is sent. Field names are the
wire names: PaddleX's camelCase envelope around its snake_case ``prunedResult``.

Optional fields that PaddleX leaves out when they do not apply (a region's ``error``,
a figure's ``block_image``) are left out of the JSON when unset, not sent as null.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from docparse.errors import InternalError, error_for_status


def _unset(value: Any) -> bool:
    return value is None


def omitted_when_unset(description: str) -> Any:
    """A field left out of the JSON when it is None (documented as optional)."""
    return Field(None, description=description, exclude_if=_unset)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- one page ---------------------------------------------------------------------------


class ParsingBlock(_Model):
    """One layout region and what was read in it (``parsing_res_list[]``)."""

    block_label: str = Field(description="Layout label: text, doc_title, table, display_formula, image…")
    block_content: str = Field(description="The recognised text, table HTML or LaTeX; empty for figures.")
    block_bbox: list[int] = Field(description="x1, y1, x2, y2 in page-image pixels.")
    block_id: int = Field(description="Position of the region in layout_det_res.boxes.")
    block_order: int | None = Field(description="1-based reading position; null when left out of the Markdown.")
    block_image: str | None = omitted_when_unset("Figures: the markdown.images key of the crop.")
    error: str | None = omitted_when_unset("Set when this region could not be recognised.")
    source: str | None = omitted_when_unset(
        "Who read block_content: text_layer (the PDF's own text, textLayer=auto) or the recognizer "
        "(vlm:<model>, cpu:pp-ocrv6); left out for figures and dropped labels."
    )


class LayoutDetBox(_Model):
    """One box found by the layout detector (``layout_det_res.boxes[]``)."""

    cls_id: int = Field(description="The detector's class id.")
    label: str = Field(description="The class name.")
    score: float = Field(description="Confidence, 0 to 1.")
    coordinate: list[float] = Field(description="x1, y1, x2, y2 in page-image pixels.")
    order: int | None = omitted_when_unset("Reading order, when the detector predicts one.")
    polygon_points: list[list[float]] | None = omitted_when_unset("The region's outline, when the detector gives one.")


class LayoutDetResult(_Model):
    boxes: list[LayoutDetBox]


#: The ``boxes`` output of the layout_detection model: a JSON list of boxes.
DET_BOXES = TypeAdapter(list[LayoutDetBox])


class ModelSettings(_Model):
    use_layout_detection: bool = Field(description="false: each page was read as one region.")
    layout_model: str = Field(description="The layout model that found the regions.")
    recognizer: str = Field(description="The engine that read them (vlm:<model> or cpu engine).")


class PrunedResult(_Model):
    """PaddleX's page JSON."""

    page_index: int = Field(description="0-based index of the page in the document.")
    width: int = Field(description="Width of the page image in pixels.")
    height: int = Field(description="Height of the page image in pixels.")
    model_settings: ModelSettings
    parsing_res_list: list[ParsingBlock] = Field(description="Regions in reading order.")
    layout_det_res: LayoutDetResult
    error: str | None = omitted_when_unset("Set when the whole page could not be parsed.")


class MarkdownResult(_Model):
    text: str = Field(description="The page as Markdown.")
    images: dict[str, str] = Field(description="Figure crops: relative path -> base64 JPEG.")
    isStart: bool = Field(description="The page starts with a new paragraph.")
    isEnd: bool = Field(description="The page ends with a finished paragraph.")


class RegionCounts(_Model):
    """The page's regions that went to the recogniser: read, or failed (marked with
    ``error`` in parsing_res_list). Figures and dropped labels are not counted."""

    recognized: int = Field(description="Regions read.")
    failed: int = Field(description="Regions whose recognition failed.")


class PageResult(_Model):
    """One ``layoutParsingResults[]`` item."""

    prunedResult: PrunedResult
    markdown: MarkdownResult
    regions: RegionCounts
    outputImages: dict[str, str] | None = Field(
        None, description="With visualize=true: the page with its layout boxes (base64 JPEG), key layout_det_res."
    )
    inputImage: str | None = Field(None, description="With visualize=true: the rendered page (base64 JPEG).")


# --- the document -------------------------------------------------------------------------


class PageSize(_Model):
    width: int
    height: int


class DataInfo(_Model):
    type: str = Field(description="pdf or image.")
    numPages: int = Field(description="Pages in the document.")
    pages: list[PageSize] = Field(description="Width and height of each parsed page, in order.")


class Timings(_Model):
    """Seconds per stage, summed over pages (stages of different pages overlap).

    render, layout, recognition, assemble and total are wall-clock and include waiting;
    crop_cpu and assemble_cpu are the orchestrator's own CPU seconds for the document.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=False)

    render: float = 0.0
    layout: float = 0.0
    recognition: float = 0.0
    assemble: float = 0.0
    total: float = 0.0
    crop_cpu: float = 0.0
    assemble_cpu: float = 0.0

    def rounded(self) -> "Timings":
        """Microsecond precision: CPU times are small, more digits are noise."""
        return Timings(**{name: round(value, 6) for name, value in self})


class DocumentSummary(_Model):
    """What went right and wrong over the whole document. A document with failed regions
    or pages is still answered (partial success) unless nothing at all could be read,
    which is an error (README, "Errors")."""

    pages: int = Field(0, description="Pages parsed.")
    failedPages: int = Field(0, description="Pages that could not be parsed at all (their prunedResult.error).")
    recognizedRegions: int = Field(0, description="Regions read, over all pages.")
    failedRegions: int = Field(0, description="Regions whose recognition failed, over all pages.")


class LayoutParsingResult(_Model):
    layoutParsingResults: list[PageResult] = Field(description="One item per parsed page, in order.")
    dataInfo: DataInfo
    summary: DocumentSummary
    mergedMarkdown: str | None = omitted_when_unset(
        "With restructurePages: the whole document's Markdown, merged across pages (README, Merge rules)."
    )


#: One word of a PDF's text layer: its text (unusable characters left out), its box
#: x1, y1, x2, y2 in page-image pixels, its characters, and how many of them are
#: unreliable (private-use, U+FFFD, controls, no Unicode mapping, invisible).
TextWord = tuple[str, float, float, float, float, int, int]


class PageTextLayer(_Model):
    """A PDF page's own text, word by word (``docparse.text_layer``)."""

    words: list[TextWord] = Field(description="text, x1, y1, x2, y2, characters, unreliable characters.")


class RenderedPageInfo(_Model):
    """The ``page`` output of ``pdf_render``, beside each page's pixels."""

    index: int = Field(description="0-based index of the page in the document.")
    width: int
    height: int
    scale: float = Field(description="Page-image pixels per PDF point at the DPI used (1 for images).")
    kind: str = Field(description="pdf or image.")
    pageCount: int = Field(description="Pages in the document.")
    selected: int = Field(description="Pages the request selected.")
    textLayer: PageTextLayer | None = omitted_when_unset("With options.textLayer: the PDF page's words (none for images).")
    encodedWidth: int | None = omitted_when_unset("With options.jpegMaxPixels: the JPEG's width (width: the page's).")
    encodedHeight: int | None = omitted_when_unset("With options.jpegMaxPixels: the JPEG's height.")


# --- envelopes (PaddleX: errorCode is 0 or the HTTP status) ---------------------------------


class LayoutParsingResponse(_Model):
    """The answer of ``/layout-parsing`` and of the Triton ``layout-parsing`` model."""

    logId: str = Field(description="The request's id (the caller's logId, or a new one).")
    errorCode: Literal[0] = Field(0, description="0 on success.")
    errorMsg: Literal["Success"] = "Success"
    result: LayoutParsingResult


class ErrorEnvelope(_Model):
    """Every error answer, and the data of the SSE ``error`` event."""

    logId: str = Field(description="The request's id (the caller's logId, or a new one).")
    errorCode: int = Field(description="The HTTP status of the error.", examples=[422])
    errorMsg: str = Field(description="What went wrong, naming the field or the limit.")


def raise_if_error(data: Any) -> None:
    """Raise the error ``data`` carries when it is an error envelope (a non-zero
    errorCode, the HTTP status), as the error of that row of the table."""
    if isinstance(data, dict) and data.get("errorCode"):
        envelope = ErrorEnvelope.model_validate(data)
        raise error_for_status(envelope.errorCode, envelope.errorMsg)


# --- the streaming protocol (layout-parsing-stream, /layout-parsing/stream) -----------------

PAGE_EVENT = "page"
FINAL_EVENT = "final"


class PageEvent(_Model):
    """One parsed page, sent as soon as it and every page before it are done."""

    type: Literal["page"] = PAGE_EVENT
    logId: str
    pageIndex: int = Field(description="0-based index of the page in the document.")
    totalPages: int = Field(description="How many pages this request returns in all.")
    numPages: int | None = omitted_when_unset("Pages in the document (the selection's is totalPages).")
    result: PageResult


class FinalEvent(_Model):
    """The last event of a successful stream."""

    type: Literal["final"] = FINAL_EVENT
    logId: str
    dataInfo: DataInfo
    summary: DocumentSummary
    timings: Timings
    mergedMarkdown: str | None = omitted_when_unset(
        "With restructurePages: the whole document's Markdown, merged across pages (the page events stay as they were)."
    )


StreamEvent = Annotated[Union[PageEvent, FinalEvent], Field(discriminator="type")]
_EVENT = TypeAdapter(StreamEvent)


def parse_event(raw: bytes | str | dict) -> PageEvent | FinalEvent:
    """A stream event from its JSON (or the dict an SSE client decoded)."""
    if isinstance(raw, dict):
        return _EVENT.validate_python(raw)
    return _EVENT.validate_json(raw)


def collect_events(log_id: str, events: list[PageEvent | FinalEvent]) -> LayoutParsingResponse:
    """A finished stream as the unary answer (pages in document order).

    A stream without its final event did not finish: ``InternalError``."""
    pages = sorted((e for e in events if isinstance(e, PageEvent)), key=lambda e: e.pageIndex)
    final = next((e for e in events if isinstance(e, FinalEvent)), None)
    if final is None:
        raise InternalError("the stream ended without its final event")
    result = LayoutParsingResult(
        layoutParsingResults=[e.result for e in pages], dataInfo=final.dataInfo, summary=final.summary,
        mergedMarkdown=final.mergedMarkdown,
    )
    return LayoutParsingResponse(logId=log_id, result=result)


# --- operations -------------------------------------------------------------------------------


class Liveness(_Model):
    """``/health``: the gateway answers; beside it, what the GLM-OCR server's clients read
    there (a quick look, not the readiness check: /health/ready is that)."""

    status: Literal["ok"] = "ok"
    vllm: bool | None = Field(description="The VLM answers its health check; null with the CPU recognizer.")
    layout_model: bool = Field(description="Triton's layout_detection model is ready.")
    model: str = Field(description="The VLM's served model name, or the CPU recognizer's.")


class Readiness(_Model):
    status: Literal["ready", "unavailable"]
    checks: dict[str, str] = Field(description="Each part checked: ok, or why it is not ready.")
    failing: str | None = omitted_when_unset("With 503: the parts that are not ready, and why.")

