"""Which pages a resumed job asks for: the selection rebuilt from its count, and written
back as a pages value the renderer accepts."""

from __future__ import annotations

import pytest

from docparse.documents import parse_page_ranges
from docparse.jobs.pages import page_spec, selected_pages


@pytest.mark.parametrize(
    ("spec", "document_pages"),
    [(None, 5), ("", 3), ("1-3,7", 9), ("5-", 12), ("7,1-2,5-", 8), ("2,2,2", 4), ("3-4, 1", 6), ("1-", 1)],
)
def test_the_selection_is_rebuilt_from_its_count_alone(spec, document_pages):
    selected = parse_page_ranges(spec, document_pages)
    assert selected_pages(spec, len(selected)) == selected


def test_the_pages_left_become_a_spec_the_renderer_reads_back():
    left = [0, 1, 2, 6, 9, 10]
    assert page_spec(left) == "1-3,7,10-11"
    assert parse_page_ranges(page_spec(left), 11) == left
    assert page_spec([4]) == "5" and page_spec([3, 1, 2, 2]) == "2-4"
