"""The documents a benchmark sends, from the command line's ``--document`` specs: the
generated test PDFs and page image, or files, read once and kept base64-encoded."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path


class UsageError(Exception):
    """Bad command-line input: reported as a message, never as a traceback."""


@dataclass(frozen=True)
class Document:
    name: str
    encoded: str  # base64 of the file
    file_type: int | None  # 0 PDF, 1 image, None: the service detects it

    def body(self, log_id: str, options: dict) -> dict:
        return {"file": self.encoded, "fileType": self.file_type, "logId": log_id, **options}


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"}


def load_documents(spec: str) -> list[Document]:
    """What one ``--document`` spec names: ``pages:FILE.pdf[@DPI]`` is every page of the
    PDF rendered as a PNG (default 144 dpi), one document each (a scanner's or a
    client's page images); anything else is the one document of ``load_document``."""
    if not spec.startswith("pages:"):
        return [load_document(spec)]
    path, _, dpi = spec[6:].partition("@")
    if not Path(path).is_file() or (dpi and not dpi.isdigit()):
        raise UsageError(f"--document {spec!r}: pages:FILE.pdf[@DPI] needs a PDF file and a whole DPI")
    return [Document(f"{Path(path).name} p{index + 1}", _b64(png), 1)
            for index, png in enumerate(page_pngs(Path(path), int(dpi or 144)))]


def page_pngs(path: Path, dpi: int) -> list[bytes]:
    """Every page of the PDF at ``path`` as a PNG at ``dpi``."""
    import io

    import pypdfium2 as pdfium

    pngs = []
    pdf = pdfium.PdfDocument(path)
    try:
        for page in pdf:
            buffer = io.BytesIO()
            page.render(scale=dpi / 72).to_pil().convert("RGB").save(buffer, format="PNG")
            pngs.append(buffer.getvalue())
    finally:
        pdf.close()
    return pngs


def load_document(spec: str) -> Document:
    """``pdf:N`` (the generated N-page test PDF), ``image`` (its first page as a PNG), or
    the path of a file."""
    from testkit import documents

    if spec.startswith("pdf:"):
        pages = spec[4:]
        if not pages.isdigit() or int(pages) < 1:
            raise UsageError(f"--document {spec!r}: pdf:N needs a page count N >= 1")
        return Document(spec, _b64(documents.sample_pdf(int(pages))), 0)
    if spec == "image":
        return Document(spec, _b64(documents.sample_image()), 1)
    path = Path(spec)
    if not path.is_file():
        raise UsageError(f"--document {spec!r}: no such file (or use pdf:N or image)")
    suffix = path.suffix.lower()
    file_type = 0 if suffix == ".pdf" else 1 if suffix in IMAGE_SUFFIXES else None
    return Document(path.name, _b64(path.read_bytes()), file_type)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
