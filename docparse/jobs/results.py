"""A job's result as ``/layout-parsing`` would have answered it, built from its stored
pages: the same envelope (pages in document order, dataInfo, summary) or Markdown."""

from __future__ import annotations

from typing import Any, Sequence

import orjson

from docparse.jobs.store import StoredPage
from docparse.responses import DataInfo, DocumentSummary, LayoutParsingResponse, LayoutParsingResult, PageResult, PageSize


def page_results(pages: Sequence[StoredPage]) -> list[PageResult]:
    """The stored pages in document order."""
    ordered = sorted(pages, key=lambda page: page.page_index)
    return [PageResult.model_validate_json(page.data) for page in ordered]


def job_response(record: dict[str, Any], pages: Sequence[StoredPage]) -> LayoutParsingResponse:
    """The envelope of the pages stored so far. Until the job's first run ends, the
    document's page count is not known and numPages counts the selected pages."""
    results = page_results(pages)
    final = orjson.loads(record["final"]) if record["final"] else {}
    summary = DocumentSummary()
    for result in results:
        summary.pages += 1
        summary.failedPages += result.prunedResult.error is not None
        summary.recognizedRegions += result.regions.recognized
        summary.failedRegions += result.regions.failed
    data_info = DataInfo(
        type=final.get("type", record["document_kind"]),
        numPages=final.get("numPages", record["pages_total"] or len(results)),
        pages=[PageSize(width=r.prunedResult.width, height=r.prunedResult.height) for r in results],
    )
    result = LayoutParsingResult(layoutParsingResults=results, dataInfo=data_info, summary=summary)
    return LayoutParsingResponse(logId=record["log_id"], result=result)


def job_markdown(pages: Sequence[StoredPage]) -> str:
    """The pages' Markdown, one after the other, as ``docparse parse`` writes it."""
    text = "\n\n".join(result.markdown.text for result in page_results(pages))
    return text + "\n" if text and not text.endswith("\n") else text
