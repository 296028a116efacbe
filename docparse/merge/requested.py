"""The restructuring a request asks for (``restructurePages`` with ``mergeTables`` and
``relevelTitles``, PaddleOCR-VL's names), applied to its pages: the one place that reads
those fields, for the orchestrator (the merged Markdown on the final event) and for the
unary answers (the pages restructured, as PaddleX's restructurePages gives them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from docparse.merge.model import MergedDocument, MergeOptions
from docparse.merge.restructure import merged_markdown, restructure_pages
from docparse.protocol import LayoutParsingRequest
from docparse.responses import LayoutParsingResponse, PageResult


@dataclass(frozen=True)
class Restructuring:
    options: MergeOptions
    ignored_labels: frozenset[str]
    prettify: bool

    @classmethod
    def of(cls, request: LayoutParsingRequest) -> "Restructuring | None":
        """What ``request`` asks for; None when it does not ask to restructure."""
        if not request.restructurePages:
            return None
        options = MergeOptions(merge_tables=request.mergeTables is not False, relevel_titles=request.relevelTitles is not False)
        return cls(options, request.ignored_labels(), request.prettifyMarkdown)

    @classmethod
    def of_body(cls, body: Mapping[str, Any]) -> "Restructuring | None":
        """The same, from a validated request's dict (the gateway keeps those)."""
        if not body.get("restructurePages"):
            return None
        return cls.of(LayoutParsingRequest.model_validate(body))

    def markdown(self, pages: Sequence[PageResult]) -> MergedDocument:
        return merged_markdown(pages, self.options, self.ignored_labels, self.prettify)

    def pages(self, pages: Sequence[PageResult]) -> list[PageResult]:
        return restructure_pages(pages, self.options, self.ignored_labels, self.prettify)

    def response(self, response: LayoutParsingResponse) -> LayoutParsingResponse:
        """A unary answer with its pages restructured (the merged Markdown stays)."""
        result = response.result
        pages = self.pages(result.layoutParsingResults)
        return response.model_copy(update={"result": result.model_copy(update={"layoutParsingResults": pages})})


def restructured(response: LayoutParsingResponse, body: Mapping[str, Any]) -> LayoutParsingResponse:
    """``response`` as ``body`` asks for it: its pages restructured, or as it is."""
    restructuring = Restructuring.of_body(body)
    return response if restructuring is None else restructuring.response(response)
