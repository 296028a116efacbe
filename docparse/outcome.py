"""What went right and wrong over a document, and the rule for when the whole document
is an error rather than a partial success.

The rule (README, "Errors"): a document is answered, with its failed regions and pages
marked and counted, unless nothing at all could be read:
- every page failed (layout or assembly): the first page's error;
- regions were sent to the recogniser and none was read: the recogniser's error, 503
  with Retry-After when it could not be reached (or is known to be down), 502 when it
  answered errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from docparse.errors import DocParseError, ErrorKind, error_for_status
from docparse.responses import DocumentSummary, PageResult

# Which cause a document's error names when its regions failed for several reasons.
_CAUSE_ORDER = (ErrorKind.RECOGNITION_UNAVAILABLE, ErrorKind.RECOGNITION_FAILED)


@dataclass
class DocumentOutcome:
    summary: DocumentSummary = field(default_factory=DocumentSummary)
    region_failures: list[DocParseError] = field(default_factory=list)
    page_failures: list[DocParseError] = field(default_factory=list)

    def add_page(self, result: PageResult, failure: DocParseError | None, region_failures: Sequence[DocParseError]) -> None:
        """Count one delivered page: ``failure`` when the whole page failed."""
        summary = self.summary
        summary.pages += 1
        summary.recognizedRegions += result.regions.recognized
        summary.failedRegions += result.regions.failed
        self.region_failures.extend(region_failures)
        if failure is not None:
            summary.failedPages += 1
            self.page_failures.append(failure)

    def verdict(self) -> DocParseError | None:
        """The document's error when nothing at all could be read, else ``None``."""
        summary = self.summary
        if summary.pages and summary.failedPages == summary.pages:
            first = self.page_failures[0]
            message = f"no page of the document could be parsed ({summary.failedPages} failed); the first: {first.message}"
            return _like(first, message)
        if summary.failedRegions and not summary.recognizedRegions:
            cause = self._main_cause()
            message = (
                f"no region of the document could be recognised ({summary.failedRegions} failed): {cause.message}"
            )
            return _like(cause, message)
        return None

    def _main_cause(self) -> DocParseError:
        for kind in _CAUSE_ORDER:
            for failure in self.region_failures:
                if failure.kind is kind:
                    return failure
        return self.region_failures[0]


def _like(cause: DocParseError, message: str) -> DocParseError:
    """An error of the same row of the error table as ``cause``, with ``message``."""
    return error_for_status(cause.status, message, cause.retry_after)
