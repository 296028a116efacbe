"""A job's result as ``/layout-parsing`` would have answered it, built from its stored
pages: the same envelope (pages in document order, dataInfo, summary) or Markdown.

Both are written a page at a time, straight from the JSON each page was stored as: a
1,000-page result never sits whole in the gateway's memory, and no page is parsed into
models and serialised again (the pages were validated when they were stored)."""

from __future__ import annotations

from typing import Any, Iterable, Iterator

import orjson

from docparse.jobs.store import StoredPage
from docparse.protocol import json_bytes
from docparse.responses import DataInfo, DocumentSummary, PageSize


class PageTally:
    """The document's dataInfo and summary, counted page by page."""

    def __init__(self) -> None:
        self.summary = DocumentSummary()
        self.sizes: list[PageSize] = []

    def add(self, page: dict[str, Any]) -> None:
        pruned, regions = page["prunedResult"], page["regions"]
        self.summary.pages += 1
        self.summary.failedPages += pruned.get("error") is not None
        self.summary.recognizedRegions += regions["recognized"]
        self.summary.failedRegions += regions["failed"]
        self.sizes.append(PageSize(width=pruned["width"], height=pruned["height"]))

    def data_info(self, record: dict[str, Any]) -> DataInfo:
        """Until the job's first run ends the document's page count is not known, and
        numPages counts the selected pages."""
        final = orjson.loads(record["final"]) if record["final"] else {}
        return DataInfo(
            type=final.get("type", record["document_kind"]),
            numPages=final.get("numPages", record["pages_total"] or len(self.sizes)),
            pages=self.sizes,
        )


def tally(pages: Iterable[StoredPage]) -> PageTally:
    counted = PageTally()
    for page in pages:
        counted.add(orjson.loads(page.data))
    return counted


def envelope_chunks(record: dict[str, Any], pages: Iterable[StoredPage]) -> Iterator[bytes]:
    """The LayoutParsingResponse JSON of the stored pages (in document order), in pieces."""
    yield b'{"logId":' + orjson.dumps(record["log_id"]) + b',"errorCode":0,"errorMsg":"Success",'
    yield b'"result":{"layoutParsingResults":['
    counted = PageTally()
    for number, page in enumerate(pages):
        counted.add(orjson.loads(page.data))
        yield (b"," if number else b"") + page.data
    summary = json_bytes(counted.summary)
    yield b'],"dataInfo":' + json_bytes(counted.data_info(record)) + b',"summary":' + summary + b"}}"


def markdown_chunks(pages: Iterable[StoredPage]) -> Iterator[bytes]:
    """The pages' Markdown one after the other, as ``docparse parse`` writes it."""
    text = ""
    for number, page in enumerate(pages):
        text = orjson.loads(page.data)["markdown"]["text"]
        yield (b"\n\n" if number else b"") + text.encode()
    if text and not text.endswith("\n"):
        yield b"\n"
