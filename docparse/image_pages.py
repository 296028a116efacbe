"""An image document's pages, opened where the document is parsed.

An image needs none of what ``pdf_render`` is for (pdfium, its sandboxed processes, the
page window): the orchestrator opens it itself with the same code and the same limits
(``docparse.documents``) and saves the hop through Triton (the file into shared memory,
the decoded page, 6 MB for A4 at 144 dpi, back). A one-frame PNG or JPEG whose pixels
nobody needs is not even decoded (``docparse.page_images``).
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import AsyncIterator

from docparse.errors import DocParseError
from docparse.documents import IMAGE, open_document, parse_page_ranges, resolve_kind
from docparse.page_images import EncodedPage, decode_rgb, passable_image
from docparse.pipeline import DocumentInfo, Page
from docparse.protocol import LayoutParsingRequest
from docparse.settings import Settings


def is_image(data: bytes, request: LayoutParsingRequest) -> bool:
    """Whether ``data`` is an image document (a file that is neither, or contradicts its
    fileType, is left to the renderer, whose error names the problem)."""
    try:
        return resolve_kind(data, request.fileType) == IMAGE
    except DocParseError:  # refused where it is rendered, with the same message
        return False


async def image_pages(
    data: bytes, request: LayoutParsingRequest, settings: Settings, pixels_needed: bool
) -> AsyncIterator[tuple[DocumentInfo, Page]]:
    """The selected frames of the image ``data``, in order: decoded as ``pdf_render``
    decodes them, or, when ``pixels_needed`` is false and the file can go to the VLM as
    it is, the file itself (decoded later only if something asks for the pixels)."""
    limits = settings.documents
    document = open_document(data, request.fileType, settings, None)  # the header only: no thread hop
    try:
        indices = parse_page_ranges(request.pages, document.page_count, limits.max_pages)
        info = DocumentInfo(document.kind, document.page_count, len(indices))
        pages = document.render(indices, request.dpi or limits.render_dpi)  # checks the dpi, as pdf_render
        if not pixels_needed and indices == [0] and document.page_count == 1:
            encoded = passable_image(data, limits.max_page_pixels)
            if encoded is not None:
                yield info, EncodedPage(0, encoded.width, encoded.height, 1.0, encoded, partial(decode_rgb, encoded))
                return
        for _ in indices:
            yield info, await asyncio.to_thread(next, pages)
    finally:
        document.close()
