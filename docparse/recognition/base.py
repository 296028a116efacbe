"""The recogniser interface: one page and its regions in, one result per region out.

Page-level (not crop-level) so that engines that read a whole page at once (a CPU OCR
engine detects text lines once per page) and engines that send each crop to a VLM fit
the same interface.
"""

from __future__ import annotations

from typing import Protocol, Sequence

from docparse.page_images import PageSource
from docparse.types import RecognitionParams, RegionJob, RegionResult


class Recognizer(Protocol):
    name: str
    #: Whether it reads a page into JSON for a schema (``RecognitionParams.json_schema``).
    supports_extraction: bool

    async def recognize(
        self,
        page: PageSource,
        jobs: Sequence[RegionJob],
        params: RecognitionParams,
    ) -> list[RegionResult]:
        """Return one result per job, in the same order. A region that fails is returned
        with ``error`` set; it never raises for one region's failure. ``page``: its
        pixels, or a page whose ``image`` is decoded when read (``docparse.page_images``:
        engines that can send a whole page's encoded picture as it is say
        ``reads_encoded_pages``)."""
        ...

    async def ensure_available(self) -> None:
        """Raise ``RecognitionUnavailableError`` when the engine is known to be down, so
        that a document fails at once instead of after every region's retries."""
        ...

    async def aclose(self) -> None:
        """Release connections and engines."""
        ...
