"""Cross-page restructuring of a parsed document (issue #17): tables and paragraphs
continued across page breaks joined, running headers, footers and page numbers kept out
of the Markdown, titles relevelled over the whole document. Pure functions over
``docparse.responses.PageResult``; ``restructure.py`` says what each returns."""

from docparse.merge.model import MergedDocument, MergeOptions
from docparse.merge.requested import Restructuring, restructured
from docparse.merge.restructure import concatenate_pages, merged_markdown, restructure_pages

__all__ = [
    "MergeOptions", "MergedDocument", "Restructuring", "concatenate_pages", "merged_markdown", "restructure_pages",
    "restructured",
]
