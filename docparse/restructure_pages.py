"""PaddleOCR-VL's ``/restructure-pages``: pages parsed separately (in parallel, say)
restructured afterwards as one document (``docparse.merge``).

The request follows PaddleX's schema (``pages: [{prunedResult, markdownImages}]``,
``mergeTables``, ``relevelTitles``, ``concatenatePages``, ``prettifyMarkdown``, …) and the
answer its envelope with ``layoutParsingResults`` (one page when ``concatenatePages``).
A page's ``prunedResult`` is read leniently, as PaddleX's own carries fields ours does
not (``group_id``, ``polygon_points``, ``input_path``…): what restructuring needs is
checked, the rest ignored.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from docparse.merge import MergeOptions, concatenate_pages, restructure_pages
from docparse.protocol import DEFAULT_MARKDOWN_IGNORE_LABELS, LogId
from docparse.responses import (
    LayoutDetBox,
    LayoutDetResult,
    MarkdownResult,
    ModelSettings,
    PageResult,
    ParsingBlock,
    PrunedResult,
    RegionCounts,
)

MAX_PAGES = 5000  # pages of one request: restructuring is linear, its answer is not small
# JSON entries a request may hold (protocol.MAX_JSON_ENTRIES is for parsing requests):
# about 100 per page of pruned results.
MAX_ENTRIES = 1_000_000


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class InputBlock(_Lenient):
    block_label: str
    block_content: str = ""
    block_bbox: list[float] = Field(min_length=4, max_length=4)
    block_id: int | None = None
    block_order: int | None = None
    block_image: str | None = None
    error: str | None = None


class InputBox(_Lenient):
    cls_id: int = -1
    label: str
    score: float = 1.0
    coordinate: list[float] = Field(min_length=4, max_length=4)


class InputBoxes(_Lenient):
    boxes: list[InputBox] = Field(default_factory=list)


class InputPrunedResult(_Lenient):
    page_index: int | None = None
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    parsing_res_list: list[InputBlock]
    layout_det_res: InputBoxes | None = None
    error: str | None = None


class InputPage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prunedResult: InputPrunedResult
    markdownImages: dict[str, str] | None = Field(None, description="The page's figure crops: path -> base64.")


class RestructurePagesRequest(BaseModel):
    """Body of ``POST /restructure-pages`` and the input of the Triton model."""

    model_config = ConfigDict(extra="forbid")

    pages: list[InputPage] = Field(min_length=1, max_length=MAX_PAGES, description="The pages in document order.")
    mergeTables: bool = Field(True, description="Join tables continued on the next page.")
    relevelTitles: bool = Field(True, description="Title levels over the whole document.")
    concatenatePages: bool = Field(False, description="Answer one page holding the whole document.")
    prettifyMarkdown: bool = Field(True, description="Blank lines between blocks.")
    showFormulaNumber: bool = Field(False, description="Accepted for compatibility; ignored.")
    returnMarkdownImages: bool = Field(True, description="Return figure crops in markdown.images.")
    outputFormats: list[str] | None = Field(None, description="Accepted for compatibility; ignored.")
    logId: LogId | None = Field(None, description="Request id echoed in the answer and logs (printable ASCII).")


class RestructurePagesResult(BaseModel):
    layoutParsingResults: list[PageResult]


class RestructurePagesResponse(BaseModel):
    logId: str
    errorCode: int = 0
    errorMsg: str = "Success"
    result: RestructurePagesResult


def page_result(page: InputPage, position: int) -> PageResult:
    """A page as the merge reads it; its Markdown is rebuilt from its blocks."""
    pruned = page.prunedResult
    blocks = [
        ParsingBlock(
            block_label=b.block_label, block_content=b.block_content, block_bbox=[int(round(v)) for v in b.block_bbox],
            block_id=i if b.block_id is None else b.block_id, block_order=b.block_order,
            block_image=b.block_image, error=b.error,
        )
        for i, b in enumerate(pruned.parsing_res_list)
    ]
    boxes = [LayoutDetBox(**box.model_dump()) for box in (pruned.layout_det_res or InputBoxes()).boxes]
    return PageResult(
        prunedResult=PrunedResult(
            page_index=position if pruned.page_index is None else pruned.page_index,
            width=pruned.width, height=pruned.height,
            model_settings=ModelSettings(use_layout_detection=True, layout_model="unknown", recognizer="unknown"),
            parsing_res_list=blocks, layout_det_res=LayoutDetResult(boxes=boxes), error=pruned.error,
        ),
        markdown=MarkdownResult(text="", images=page.markdownImages or {}, isStart=True, isEnd=True),
        regions=RegionCounts(recognized=0, failed=0),
    )


def restructure(request: RestructurePagesRequest, log_id: str) -> RestructurePagesResponse:
    """The request's pages restructured as one document."""
    pages = [page_result(page, i) for i, page in enumerate(request.pages)]
    options = MergeOptions(merge_tables=request.mergeTables, relevel_titles=request.relevelTitles)
    ignored = frozenset(DEFAULT_MARKDOWN_IGNORE_LABELS)
    if request.concatenatePages:
        results = [concatenate_pages(pages, options, ignored, request.prettifyMarkdown)]
    else:
        results = restructure_pages(pages, options, ignored, request.prettifyMarkdown)
    if not request.returnMarkdownImages:
        results = [_without_images(page) for page in results]
    return RestructurePagesResponse(logId=log_id, result=RestructurePagesResult(layoutParsingResults=results))


def _without_images(page: PageResult) -> PageResult:
    return page.model_copy(update={"markdown": page.markdown.model_copy(update={"images": {}})})

