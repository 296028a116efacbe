"""OCRFlux's document conversion API (``/convert/file``, ``/convert/url``), on our pipeline.

Users of OCRFlux's API server (in front of a remote vLLM serving ``ChatDOC/OCRFlux-3B``)
send these fields and read ``{status, format, content, error, metadata}``. A conversion
is one ``/layout-parsing`` request with page retries and, unless skipped, the
cross-page merge (``docparse.merge``); the models here validate the request, build the
answer and are what ``/docs`` shows. Beyond OCRFlux: ``failed_pages`` (each page still
failing after its retries, with its error), ``pages``, ``dpi``, ``logId``, and
``output_format=json``.
"""

from __future__ import annotations

import html
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from docparse.protocol import MAX_PAGE_RETRIES, MAX_PAGES_SPEC, LogId
from docparse.responses import ErrorEnvelope, LayoutParsingResult, PageResult
from docparse.settings import MIN_DPI

OutputFormat = Literal["markdown", "text", "json"]


class ConvertOptions(BaseModel):
    """The options of both routes (form fields of ``/convert/file``, JSON of ``/convert/url``)."""

    model_config = ConfigDict(extra="forbid")

    output_format: OutputFormat = Field(
        "markdown", description="markdown; text (Markdown stripped to plain text); json (pages and structure)."
    )
    max_page_retries: int | None = Field(
        None, ge=0, le=MAX_PAGE_RETRIES, description="Times a bad page is read again (default HPS_MAX_PAGE_RETRIES)."
    )
    skip_cross_page_merge: bool | None = Field(
        None, description="true: pages joined as they are, no cross-page merge (default HPS_SKIP_CROSS_PAGE_MERGE)."
    )
    pages: str | None = Field(None, max_length=MAX_PAGES_SPEC, description='1-based ranges, "1-3,7"; null = all.')
    dpi: int | None = Field(None, ge=MIN_DPI, description="Rendering resolution of PDF pages (default HPS_RENDER_DPI).")
    model: str | None = Field(None, min_length=1, max_length=200, description="The VLM profile (HPS_VLM_PROFILES); default the first.")
    text_layer: Literal["auto", "off"] | None = Field(
        None, description="auto: a PDF's text regions read from its own text where reliable; off: all recognized "
        "(default HPS_TEXT_LAYER).",
    )
    logId: LogId | None = Field(None, description="Request id echoed in the answer and logs (printable ASCII).")

    def layout_request(self, file: str, log_id: str, skip_merge_default: bool) -> dict[str, Any]:
        """The ``/layout-parsing`` request of this conversion (``file``: base64 or URL)."""
        skip = skip_merge_default if self.skip_cross_page_merge is None else self.skip_cross_page_merge
        request: dict[str, Any] = {"file": file, "logId": log_id, "restructurePages": not skip}
        for ours, theirs in (("maxPageRetries", self.max_page_retries), ("pages", self.pages), ("dpi", self.dpi), ("model", self.model),
                             ("textLayer", self.text_layer)):
            if theirs is not None:
                request[ours] = theirs
        return request


class ConvertUrlRequest(ConvertOptions):
    """Body of ``POST /convert/url``."""

    url: str = Field(..., min_length=1, description="http(s) URL of the PDF or image (when HPS_ALLOW_URL_INPUT).")


class FailedPage(BaseModel):
    page: int = Field(description="1-based page number.")
    error: str = Field(description="Why the page (or a region of it) could not be read.")


class ConvertMetadata(BaseModel):
    filename: str | None = Field(None, description="/convert/file: the uploaded file's name.")
    url: str | None = Field(None, description="/convert/url: the URL.")
    file_size: int = Field(description="Bytes of the document.")
    pages_processed: int = Field(description="Pages converted.")
    num_pages: int = Field(description="Pages in the document.")
    fallback_pages: list[int] = Field(description="OCRFlux's name for failed_pages: their 1-based numbers.")


class ConvertResponse(BaseModel):
    """The answer of both routes."""

    status: Literal["success"] = "success"
    format: OutputFormat
    content: str | dict[str, Any] = Field(
        description="The document: Markdown or text; for json an object {document_text, page_texts, "
        "fallback_pages, num_pages, pages} (OCRFlux's parse result, plus each page's layout result)."
    )
    error: str | None = Field(None, description="Null: a conversion that fails answers an error status.")
    failed_pages: list[FailedPage] = Field(description="Pages still failing after their retries; marked in content.")
    metadata: ConvertMetadata
    logId: str


class ConvertErrorBody(ErrorEnvelope):
    """Every error of ``/convert/*``: OCRFlux's ``status`` and ``error`` beside our envelope."""

    status: Literal["error"] = "error"
    error: str = Field(description="What went wrong (the same as errorMsg).")


def failed_pages(pages: list[PageResult]) -> list[FailedPage]:
    """Each page that failed, or has a region that failed, with the first error."""
    failed = []
    for page in pages:
        pruned = page.prunedResult
        errors = [pruned.error] if pruned.error else [b.error for b in pruned.parsing_res_list if b.error]
        if errors:
            failed.append(FailedPage(page=pruned.page_index + 1, error=errors[0]))
    return failed


def document_markdown(result: LayoutParsingResult, prettify: bool = True) -> str:
    """The merged document when the pipeline merged it, else the pages one after another."""
    if result.mergedMarkdown is not None:
        return result.mergedMarkdown
    return ("\n\n" if prettify else "\n").join(page.markdown.text for page in result.layoutParsingResults)


_TAGS = re.compile(r"<[^>]+>")
_CELL_END = re.compile(r"\s*</t[dh]>\s*", re.IGNORECASE)
_ROW_END = re.compile(r"\s*</tr>\s*", re.IGNORECASE)
_MARKUP = (
    (re.compile(r"^#{1,6}\s+", re.MULTILINE), ""),  # headings
    (re.compile(r"!\[[^\]]*\]\([^)]*\)"), ""),  # images
    (re.compile(r"\[([^\]]+)\]\([^)]*\)"), r"\1"),  # links
    (re.compile(r"(\*\*|__)(.+?)\1"), r"\2"),  # bold
    (re.compile(r"(?<![*\w])\*(?!\s)(.+?)(?<!\s)\*"), r"\1"),  # italics
    (re.compile(r"`([^`]+)`"), r"\1"),  # code
    (re.compile(r"<!--.*?-->", re.DOTALL), ""),  # comments (failed regions keep theirs in markdown)
    (re.compile(r"^\$\$\s*$", re.MULTILINE), ""),  # display math fences (the LaTeX stays)
)


def markdown_to_text(markdown: str) -> str:
    """Plain text: Markdown markup removed, tables as tab-separated rows."""
    text = markdown
    for pattern, replacement in _MARKUP:
        text = pattern.sub(replacement, text)
    text = _ROW_END.sub("\n", _CELL_END.sub("\t", text))
    text = html.unescape(_TAGS.sub("", text))
    text = re.sub(r"[ \t]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def json_content(result: LayoutParsingResult, document_text: str, failed: list[FailedPage]) -> dict[str, Any]:
    """OCRFlux's parse result, and each page's layout result."""
    pages = result.layoutParsingResults
    return {
        "document_text": document_text,
        "page_texts": {str(p.prunedResult.page_index + 1): p.markdown.text for p in pages},
        "fallback_pages": [f.page for f in failed],
        "num_pages": result.dataInfo.numPages,
        "pages": [p.model_dump(mode="json", exclude_none=True) for p in pages],
    }
