"""Reference text for scoring each model: files written by a person, or a born-digital
PDF's own text layer.

``--gold DIR`` holds, for a document ``report.pdf``, either one file per page,
``report.1.md`` (or ``.txt``), ``report.2.md``… (pages from 1; scored page by page), or
one file for the whole document, ``report.md`` or ``report.txt`` (scored against the
model's pages joined). Per-page files win when both are there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pypdfium2

from docparse.cli import CliError

TEXT_LAYER = "text-layer"


@dataclass(frozen=True)
class Gold:
    """A document's reference: ``pages`` (per page) or ``document`` (whole), one of them."""

    pages: list[str] | None = None
    document: str | None = None


def read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8-sig")


def from_dir(folder: Path, source: Path) -> Gold:
    """The gold text of ``source`` in ``folder``; none there is a CliError naming the files
    looked for."""
    stem = source.stem
    pages: list[str] = []
    while True:
        found = [folder / f"{stem}.{len(pages) + 1}{ext}" for ext in (".md", ".txt")]
        page = next((path for path in found if path.is_file()), None)
        if page is None:
            break
        pages.append(read_text(page))
    if pages:
        return Gold(pages=pages)
    for ext in (".md", ".txt"):
        if (folder / f"{stem}{ext}").is_file():
            return Gold(document=read_text(folder / f"{stem}{ext}"))
    raise CliError(f"no gold text for {source.name}: expected {folder / (stem + '.md')}, "
                   f"{stem}.txt or per page {stem}.1.md, {stem}.2.md… in {folder}")


def from_text_layer(source: Path) -> Gold:
    """The text of each page of a born-digital PDF (pypdfium2), as the reference."""
    try:
        document = pypdfium2.PdfDocument(str(source))
    except pypdfium2.PdfiumError as exc:
        raise CliError(f"--gold text-layer needs a PDF with a text layer: {source.name}: {exc}") from None
    try:
        pages = []
        for page in document:
            textpage = page.get_textpage()
            pages.append(textpage.get_text_range())
            textpage.close()
            page.close()
        return Gold(pages=pages)
    finally:
        document.close()


def load(option: str | None, sources: list[Path]) -> dict[str, Gold]:
    """The gold of every source by its file name ({} without ``--gold``), read before any
    request goes out, so that a missing file is said at once."""
    if not option:
        return {}
    if option == TEXT_LAYER:
        return {source.name: from_text_layer(source) for source in sources}
    folder = Path(option)
    if not folder.is_dir():
        raise CliError(f"--gold {option}: not a folder (or 'text-layer' for a PDF's own text)")
    return {source.name: from_dir(folder, source) for source in sources}
