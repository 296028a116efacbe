"""Which pages of a job are left: its selection, expanded once the pipeline has said how
many pages it selects, and written back as a ``pages`` value for the next run."""

from __future__ import annotations

import re
from typing import Iterable

from docparse.documents import parse_page_ranges

_NUMBER = re.compile(r"\d+")


def selected_pages(spec: str | None, count: int) -> list[int]:
    """The 0-based pages ``spec`` selected, knowing there are ``count`` of them.

    Why it works without the document's page count: the selection is the sorted union of
    the ranges cut at the document's end, so it is the first ``count`` pages of the union
    with open ranges ("5-") running on; any end past the last number written will do."""
    if spec is None or not spec.strip():
        return list(range(count))
    numbers = [int(n) for n in _NUMBER.findall(spec)]
    bound = max(numbers, default=0) + count
    return parse_page_ranges(spec, bound)[:count]


def page_spec(indices: Iterable[int]) -> str:
    """0-based page indices as a 1-based ``pages`` value: ``[0, 1, 2, 6]`` -> ``"1-3,7"``."""
    parts: list[str] = []
    run: list[int] = []
    for index in sorted(set(indices)):
        if run and index != run[-1] + 1:
            parts.append(_run_text(run))
            run = []
        run.append(index)
    if run:
        parts.append(_run_text(run))
    return ",".join(parts)


def _run_text(run: list[int]) -> str:
    first, last = run[0] + 1, run[-1] + 1
    return str(first) if first == last else f"{first}-{last}"
