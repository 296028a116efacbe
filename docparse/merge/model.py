"""The options, the answer, and the working state of a document being restructured."""

from __future__ import annotations

from dataclasses import dataclass, field

from docparse.responses import PageResult, ParsingBlock


@dataclass(frozen=True)
class MergeOptions:
    """Which cross-page rules apply (the /restructure-pages flags, and two of ours)."""

    merge_tables: bool = True  # mergeTables
    merge_paragraphs: bool = True  # paragraphs across page breaks
    relevel_titles: bool = True  # relevelTitles
    drop_running_text: bool = True  # running headers/footers/page numbers out of the merged Markdown


@dataclass(frozen=True)
class MergedDocument:
    """The whole document as Markdown, and every page's figure crops (path → base64)."""

    text: str
    images: dict[str, str] = field(default_factory=dict)


@dataclass
class Slot:
    """One block while the document is restructured: its text may grow (a table or a
    paragraph the next page continues), it may move (its text now lives in an earlier
    page's block), be running text, or get a heading level."""

    block: ParsingBlock
    content: str
    running: bool = False
    moved: bool = False
    level: int | None = None

    @property
    def label(self) -> str:
        return self.block.block_label


@dataclass
class PageState:
    """One page being restructured: the page as it came, and its blocks as slots."""

    page: PageResult
    slots: list[Slot]
    starts_inside: bool = False  # its first paragraph goes on from the page before, not joined
    ends_inside: bool = False  # its last paragraph goes on over the page, not joined

    @classmethod
    def of(cls, page: PageResult) -> "PageState":
        blocks = page.prunedResult.parsing_res_list
        return cls(page, [Slot(block, block.block_content) for block in blocks])

    @property
    def failed(self) -> bool:
        return self.page.prunedResult.error is not None
